"""The demo path a new user runs: generate, import both sources, serve,
and read a journey over HTTP."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.servers import free_port

JOURNEY = str(Path(sys.executable).parent / "journey")


def test_demo_serves_a_journey_spanning_all_three_jobs(tmp_path: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        "COLUMNS": "120",
        "JOURNEY_DATABASE_URL": f"sqlite:///{tmp_path / 'demo.db'}",
    }
    env.pop("JOURNEY_API_KEYS", None)
    process = subprocess.Popen(
        [JOURNEY, "demo", "--port", str(port), "--data-dir", str(tmp_path / "sample")],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        url = None
        deadline = time.monotonic() + 120
        assert process.stdout is not None
        for line in process.stdout:
            match = re.match(r"Journey: (http://\S+)", line)
            if match:
                url = match.group(1)
                break
            assert time.monotonic() < deadline, "demo did not print a journey URL in time"
        assert url is not None, "demo ended without printing a journey URL"
        assert url.startswith(f"http://127.0.0.1:{port}/people/")

        headers = {"Authorization": "Bearer demo-key"}
        response = None
        while time.monotonic() < deadline:
            try:
                response = httpx.get(url, headers=headers, timeout=5)
                break
            except httpx.TransportError:
                time.sleep(0.2)
        assert response is not None
        assert response.status_code == 200
        body = response.json()
        jobs = {record["job"] for record in body["items"]}
        assert {"diagnose", "treat", "keep_well"} <= jobs
        assert {record["source"]["source"] for record in body["items"]} == {
            "riverside-clinic",
            "summit-health-plan",
        }
        assert all(record["reason"]["text"] for record in body["items"])
        assert httpx.get(url, timeout=5).status_code == 401
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).json()["status"] == "ok"
        ssn = "999-10-1000"  # person 0 of the sample, in both sources
        found = httpx.get(
            f"http://127.0.0.1:{port}/people",
            params={"identifier": f"http://hl7.org/fhir/sid/us-ssn|{ssn}"},
            headers=headers,
            timeout=5,
        ).json()["items"]
        assert len(found) == 1
        assert len(found[0]["sources"]) == 2
        # The demo can be pushed to, with the push key it prints.
        pushed = httpx.put(
            f"http://127.0.0.1:{port}/fhir/Patient/demo-push-1",
            json={"resourceType": "Patient", "id": "demo-push-1", "gender": "unknown"},
            headers={
                "Authorization": "Bearer demo-push-key",
                "Content-Type": "application/fhir+json",
            },
            timeout=10,
        )
        assert pushed.status_code == 201, pushed.text
    finally:
        process.terminate()
        process.wait(timeout=20)
        log = process.stdout.read() if process.stdout else ""
        if process.stdout:
            process.stdout.close()
    # The server logs each request by path and status; never the query string.
    assert "GET /people 200" in log
    assert ssn not in log
