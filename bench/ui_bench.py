"""Web UI benchmark: how long `journey serve` takes to render a long journey page.

Fills a SQLite store with one person holding `--records` records (encounters over
the years, with PHQ-9 responses among them so that episodes and a PROM chart are
drawn), starts `journey serve` on it, signs in to the UI, then reads the person's
page (`GET /ui/people/{id}`, every record in three lanes) `--reads` times,
alternating with the same journey as JSON from the API (`GET
/people/{id}/journey?limit=1000`), so the machine's drift falls on both. Prints
p50, p95 and p99 of each and their ratio. Goal: the page's p95 under 300 ms at 500
records.

    scripts/bench-ui --records 500 --reads 200
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from integration.cli.demo_population import ANSWERS, PHQ9_ITEMS  # noqa: E402
from integration.ingest.pipeline import IngestPipeline  # noqa: E402
from integration.store.engine import open_store  # noqa: E402
from mappings.rulepack import load_rule_pack  # noqa: E402

JOURNEY = str(Path(sys.executable).parent / "journey")
KEY = "bench-key"
LOINC = "http://loinc.org"


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def resources(count: int) -> list[dict[str, Any]]:
    """One Patient and `count` records: mostly visits, every tenth a PHQ-9."""
    made: list[dict[str, Any]] = [
        {
            "resourceType": "Patient",
            "id": "p1",
            "name": [{"family": "Longfellow", "given": ["Ada"]}],
            "birthDate": "1958-04-02",
        }
    ]
    start = date(2010, 1, 4)
    for n in range(count):
        day = (start + timedelta(days=9 * n)).isoformat()
        if n % 10 == 5:
            score = [3, 2, 2, 1, 2, 1, 1, 1, 0] if n % 20 == 5 else [1, 1, 0, 1, 0, 0, 1, 0, 0]
            made.append(
                {
                    "resourceType": "QuestionnaireResponse",
                    "id": f"qr{n}",
                    "status": "completed",
                    "questionnaire": "http://loinc.org/q/44249-1",
                    "subject": {"reference": "Patient/p1"},
                    "authored": f"{day}T10:00:00Z",
                    "item": [
                        {
                            "linkId": code,
                            "answer": [
                                {
                                    "valueCoding": {
                                        "system": "http://loinc.org",
                                        "code": ANSWERS[value][0],
                                    }
                                }
                            ],
                        }
                        for code, value in zip(PHQ9_ITEMS, score, strict=True)
                    ],
                }
            )
            continue
        reason = ("I10", "Essential hypertension") if n % 3 else ("E11.9", "Type 2 diabetes")
        made.append(
            {
                "resourceType": "Encounter",
                "id": f"e{n}",
                "status": "finished",
                "class": {
                    "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                    "code": "AMB",
                },
                "subject": {"reference": "Patient/p1"},
                "period": {"start": f"{day}T09:00:00Z", "end": f"{day}T09:30:00Z"},
                "reasonCode": [
                    {
                        "coding": [
                            {
                                "system": "http://hl7.org/fhir/sid/icd-10-cm",
                                "code": reason[0],
                                "display": reason[1],
                            }
                        ]
                    }
                ],
            }
        )
    return made


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=500)
    parser.add_argument("--reads", type=int, default=200)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-ui-"))
    url = f"sqlite:///{folder / 'store.db'}"
    engine = open_store(url)
    data = folder / "journey.ndjson"
    data.write_bytes(b"\n".join(orjson.dumps(r) for r in resources(args.records)) + b"\n")
    IngestPipeline(engine, load_rule_pack(), "bench-clinic", 16 << 20).run([data])
    engine.dispose()
    port = free_port()
    env = {
        **os.environ,
        "JOURNEY_DATABASE_URL": url,
        "JOURNEY_API_KEYS": KEY,
        "JOURNEY_RATE_LIMIT_PER_MINUTE": "0",
        "JOURNEY_LOG_LEVEL": "WARNING",
    }
    server = subprocess.Popen(
        [JOURNEY, "serve", "--port", str(port)],
        env=env,
        cwd=folder,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base, timeout=30) as client:
            for _ in range(200):
                try:
                    if client.get("/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.1)
            auth = {"Authorization": f"Bearer {KEY}"}
            person = client.get("/people", headers=auth).json()["items"][0]["id"]
            # Wait for `journey serve`'s upkeep to build the episodes.
            while client.get("/status", headers=auth).json()["episodes_pending_people"]:
                time.sleep(0.2)
            login = client.get("/ui/login")
            csrf = re.search(r'name="csrf" value="([^"]+)"', login.text)
            assert csrf is not None
            signed = client.post("/ui/login", data={"credential": KEY, "csrf": csrf.group(1)})
            assert signed.status_code == 303, signed.status_code
            page = client.get(f"/ui/people/{person}")
            assert page.status_code == 200
            shown = page.text.count('<article class="record')
            charts = page.text.count('<figure class="prom"')
            print(
                f"person with {shown} records and {charts} PROM charts on the page, "
                f"{len(page.content):,} bytes of HTML"
            )
            timings: dict[str, list[float]] = {"page": [], "json": []}
            for _ in range(args.reads):
                for label, path, headers in (
                    ("page", f"/ui/people/{person}", {}),
                    ("json", f"/people/{person}/journey?limit=1000", auth),
                ):
                    started = time.perf_counter()
                    answer = client.get(path, headers=headers)
                    timings[label].append((time.perf_counter() - started) * 1000)
                    assert answer.status_code == 200
        print(f"\n{args.reads} reads each (ms):")
        for label, values in timings.items():
            print(
                f"  {label:5} p50 {pct(values, 0.5):7.1f}  p95 {pct(values, 0.95):7.1f}"
                f"  p99 {pct(values, 0.99):7.1f}"
            )
        ratio = pct(timings["page"], 0.95) / pct(timings["json"], 0.95)
        print(f"  page / json at p95: {ratio:.2f}x")
        verdict = "met" if pct(timings["page"], 0.95) < 300 else "NOT met"
        print(f"  goal p95 < 300 ms for the page: {verdict}")
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
