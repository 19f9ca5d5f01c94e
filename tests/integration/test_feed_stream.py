"""The feed as Server-Sent Events from a real `journey serve`: an httpx-sse client
reads pushed changes live, the server is killed (-9) and started again, and the client
resumes with Last-Event-ID: every event once, in order, none lost. A Consent given
and withdrawn while a stream is open takes effect on that stream."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from httpx_sse import connect_sse

from mappings.consent import CONSENT_SCOPE
from tests.conftest import encounter, patient
from tests.servers import free_port, wait_until_up

JOURNEY = str(Path(sys.executable).parent / "journey")
READ_KEY = "stream-read-key"
PUSH_KEY = "stream-push-key"
READ = {"Authorization": f"Bearer {READ_KEY}"}
PUSH = {"Authorization": f"Bearer {PUSH_KEY}", "Content-Type": "application/fhir+json"}
pytestmark = pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)


class Server:
    def __init__(self, folder: Path, store_url: str) -> None:
        config = folder / "journey.toml"
        config.write_text(
            '[[push_clients]]\nsource = "riverside"\nkey_env = "STREAM_PUSH_KEY"\n',
            encoding="utf-8",
        )
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "JOURNEY_CONFIG": str(config),
            "JOURNEY_DATABASE_URL": store_url,
            "JOURNEY_API_KEYS": READ_KEY,
            "STREAM_PUSH_KEY": PUSH_KEY,
        }
        self.folder = folder
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [JOURNEY, "serve", "--port", str(self.port)],
            env=self.env,
            cwd=self.folder,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until_up(f"{self.url}/healthz", self.process, "journey serve")

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=20)

    def push(self, *resources: dict[str, Any]) -> None:
        for resource in resources:
            url = f"{self.url}/fhir/{resource['resourceType']}/{resource['id']}"
            answer = httpx.put(url, headers=PUSH, content=orjson.dumps(resource), timeout=30)
            assert answer.status_code in (200, 201), answer.text


@pytest.fixture
def server(tmp_path: Path, store_url: str) -> Iterator[Server]:
    running = Server(tmp_path, store_url)
    running.start()
    try:
        yield running
    finally:
        if running.process is not None and running.process.poll() is None:
            running.process.terminate()
            running.process.wait(timeout=20)


def read_events(
    server: Server, count: int, last_event_id: str | None = None
) -> list[dict[str, Any]]:
    headers = {**READ, **({"Last-Event-ID": last_event_id} if last_event_id else {})}
    seen: list[dict[str, Any]] = []
    with httpx.Client(timeout=httpx.Timeout(30, read=30)) as client, connect_sse(
        client, "GET", f"{server.url}/feed/stream", headers=headers,
        params={"types": "record.added"},
    ) as source:  # fmt: skip
        for sse in source.iter_sse():
            event = orjson.loads(sse.data)
            assert sse.id == event["id"]
            assert sse.event == event["type"]
            seen.append(event)
            if len(seen) == count:
                break
    return seen


def test_a_stream_resumes_after_the_server_is_killed(server: Server) -> None:
    server.push(patient("p1"), encounter("e1", "p1"), encounter("e2", "p1"))
    first = read_events(server, 2)
    assert [e["type"] for e in first] == ["record.added", "record.added"]
    server.kill()
    server.start()
    server.push(encounter("e3", "p1"), encounter("e4", "p1"))
    rest = read_events(server, 2, last_event_id=first[-1]["id"])
    ids = [e["id"] for e in first + rest]
    assert len(set(ids)) == 4
    assert [int(i.removeprefix("evt_")) for i in ids] == sorted(
        int(i.removeprefix("evt_")) for i in ids
    )


def test_a_stream_refuses_an_unknown_last_event_id(server: Server) -> None:
    answer = httpx.get(
        f"{server.url}/feed/stream", headers={**READ, "Last-Event-ID": "evt_999999"}, timeout=10
    )
    assert answer.status_code == 400
    assert answer.headers["content-type"] == "application/problem+json"
    unknown = httpx.get(
        f"{server.url}/feed/stream", headers=READ, params={"types": "nope"}, timeout=10
    )
    assert unknown.status_code == 400


def opt_out(status: str) -> dict[str, Any]:
    return {
        "resourceType": "Consent",
        "id": "opt-out-p1",
        "status": status,
        "scope": {"coding": [{"system": CONSENT_SCOPE, "code": "patient-privacy"}]},
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": {"reference": "Patient/p1"},
        "provision": {"type": "deny"},
    }


def test_a_consent_given_and_withdrawn_mid_stream_takes_effect_on_the_open_stream(
    server: Server,
) -> None:
    """One stream stays open throughout: p1's records stop while p1 opts out and come
    again once the Consent is withdrawn; p2's records mark how far the stream got."""
    server.push(patient("p1"), patient("p2", name=[{"family": "Other", "given": ["Ann"]}]))
    people = httpx.get(f"{server.url}/people", headers=READ, timeout=10).json()["items"]
    person = {p["sources"][0]["patient_id"]: p["id"] for p in people}
    seen: list[str] = []  # the person of each record.added, in stream order
    marks = 0
    opened = threading.Event()

    def read() -> None:
        nonlocal marks
        with httpx.Client(timeout=httpx.Timeout(30, read=30)) as client, connect_sse(
            client, "GET", f"{server.url}/feed/stream", headers=READ,
            params={"types": "record.added"},
        ) as source:  # fmt: skip
            opened.set()
            for sse in source.iter_sse():
                seen.append(orjson.loads(sse.data)["person_id"])
                marks += seen[-1] == person["p2"]
                if marks == 3:
                    return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    assert opened.wait(20)

    def until_marks(count: int) -> None:
        deadline = time.monotonic() + 30
        while marks < count:
            assert time.monotonic() < deadline, seen
            time.sleep(0.05)

    server.push(encounter("e1", "p1"), encounter("m1", "p2", start="2025-04-01T10:00:00Z"))
    until_marks(1)
    server.push(opt_out("active"))
    server.push(
        encounter("e2", "p1", start="2025-05-01T10:00:00Z"),
        encounter("m2", "p2", start="2025-05-02T10:00:00Z"),
    )
    until_marks(2)
    withheld_span = list(seen)
    server.push(opt_out("inactive"))
    server.push(
        encounter("e3", "p1", start="2025-06-01T10:00:00Z"),
        encounter("m3", "p2", start="2025-06-02T10:00:00Z"),
    )
    reader.join(timeout=30)
    assert not reader.is_alive()
    # Before the opt-out: e1. While it held: p1's e2 never came. After: e3 did.
    first_mark = withheld_span.index(person["p2"])
    assert withheld_span[:first_mark].count(person["p1"]) == 1
    assert withheld_span[first_mark:].count(person["p1"]) == 0
    assert seen[len(withheld_span) :].count(person["p1"]) == 1
