"""`journey serve`'s background upkeep gives way to requests: while the server answers
them, recomputing episodes takes at most its share of the time, and it runs flat out
when nobody is waiting. Rests are asked of the upkeep's stop event, so the tests read
them instead of waiting them out."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.responses import StreamingResponse
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine

from integration.api.activity import RECENT_SECONDS, RequestActivity
from integration.api.latency import install_request_latency
from integration.journey.episodes import refresh_episodes
from integration.journey.rule_packs import store_pack
from integration.journey.upkeep import Upkeep
from integration.store import queries
from integration.store.episodes import mark_stale, stale_count
from tests.conftest import ImportFn, encounter, patient, write_ndjson


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_request_in_flight_or_just_answered_is_activity_and_silence_is_not() -> None:
    clock = Clock()
    activity = RequestActivity(clock)
    assert not activity.busy()  # never asked
    activity.started()
    clock.now += 60
    assert activity.busy()  # a long request is still a request
    activity.ended()
    clock.now += RECENT_SECONDS / 2
    assert activity.busy()  # the client's next request is a few ms away
    clock.now += RECENT_SECONDS
    assert not activity.busy()


def test_the_middleware_counts_a_request_while_it_is_answered_even_when_it_fails() -> None:
    app = FastAPI()
    clock = Clock()
    activity = install_request_latency(app, CollectorRegistry(), RequestActivity(clock))
    seen: list[int] = []

    @app.get("/ok")
    def ok() -> dict[str, int]:
        seen.append(activity.in_flight)
        return {"in_flight": activity.in_flight}

    @app.get("/boom")
    def boom() -> None:
        seen.append(activity.in_flight)
        raise RuntimeError("a bug")

    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.get("/ok").json() == {"in_flight": 1}
        assert client.get("/boom").status_code == 500
    assert seen == [1, 1]
    assert activity.in_flight == 0
    assert activity.busy()  # just answered
    clock.now += RECENT_SECONDS
    assert not activity.busy()


def test_an_open_event_stream_counts_as_answered_once_it_starts() -> None:
    """/feed/stream stays open for hours: it must not keep the upkeep resting."""
    app = FastAPI()
    activity = install_request_latency(app, CollectorRegistry())
    seen: list[int] = []

    @app.get("/stream")
    def stream() -> StreamingResponse:
        def events() -> Iterator[bytes]:
            yield b"event: one\n\n"
            seen.append(activity.in_flight)  # the answer has started by now
            yield b"event: two\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    with TestClient(app) as client:
        assert client.get("/stream").text.count("event:") == 2
    assert seen == [0]
    assert activity.in_flight == 0  # counted out once, not twice


def upkeep(engine: Engine, busy: bool, share: float) -> Upkeep:
    return Upkeep(engine, store_pack, retention_days=30, busy=lambda: busy, share=share)


@pytest.mark.parametrize(
    ("busy", "share", "rest"),
    [
        (True, 0.25, 3.0),  # 1 s of work, then 3 s for the requests
        (True, 0.5, 1.0),
        (True, 1.0, 0.0),  # a share of 1 never rests
        (False, 0.25, 0.0),  # nobody waiting: flat out
    ],
)
def test_the_upkeep_rests_in_proportion_to_its_work_only_while_requests_are_answered(
    engine: Engine, busy: bool, share: float, rest: float
) -> None:
    assert upkeep(engine, busy, share).rest_after(1.0) == pytest.approx(rest)


@pytest.mark.parametrize("share", [0.0, -1.0, 1.5])
def test_a_share_outside_0_to_1_is_refused(engine: Engine, share: float) -> None:
    with pytest.raises(ValueError, match="upkeep share"):
        upkeep(engine, True, share)


@pytest.fixture
def stale_people(engine: Engine, tmp_path: Path, import_files: ImportFn) -> list[str]:
    resources: list[dict[str, Any]] = []
    for n in range(6):
        name = [{"family": f"Family{n}", "given": [f"Given{n}"]}]
        resources += [patient(f"p{n}", name=name), encounter(f"e{n}", f"p{n}")]
    import_files(write_ndjson(tmp_path / "six.ndjson", *resources), source="clinic")
    with engine.begin() as conn:
        people = [p["id"] for p in queries.list_people(conn, 10)]
        mark_stale(conn, people)
    return people


def test_a_pass_paces_itself_after_each_batch_and_stops_when_told(
    engine: Engine, stale_people: list[str]
) -> None:
    batches: list[float] = []

    def pace(seconds: float) -> bool:
        batches.append(seconds)
        return len(batches) < 2  # stop after the second batch

    done = refresh_episodes(engine, store_pack(engine), batch_size=2, pace=pace)
    assert done == 4
    assert len(batches) == 2
    assert all(seconds > 0 for seconds in batches)
    with engine.connect() as conn:
        assert stale_count(conn) == 2  # still marked: the next pass takes them


def test_stopping_serve_does_not_wait_out_a_rest(engine: Engine, stale_people: list[str]) -> None:
    # A share so small that one batch's rest would outlast the test many times over.
    slow = Upkeep(
        engine,
        store_pack,
        retention_days=30,
        interval=0.01,
        batch_size=1,
        busy=lambda: True,
        share=0.0001,
    )
    slow.start()
    deadline = time.monotonic() + 30
    while len(stale_people) - _stale(engine) < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _stale(engine) < len(stale_people)  # one batch done, now resting
    began = time.monotonic()
    slow.stop()
    assert time.monotonic() - began < 5
    assert not any(t.name == "upkeep" for t in threading.enumerate())
    assert _stale(engine) == len(stale_people) - 1  # it did not go on after its rest


def _stale(engine: Engine) -> int:
    with engine.connect() as conn:
        return stale_count(conn)
