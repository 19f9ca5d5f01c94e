"""Faults while the feed flows to a webhook: a provider pushes about 10,000 events'
worth of data to a real `journey serve` while a real `journey worker` delivers them
to a receiver that verifies every signature; the API and the worker are each killed
with -9 mid-flow and started again. Not one event is lost, and a repeat only ever
carries the same event id with the same body."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import Engine

from integration.store import episodes as episodes_store
from integration.store import feed as feed_store
from integration.store.engine import create_store_engine
from tests.conftest import encounter, patient
from tests.servers import JourneyProcess
from tests.webhook_receiver import Receiver

PUSH_KEY = "fault-push-key"
SECRET = "whsec_" + "C2FsdHlDYXJhbWVsU2FsdHlDYXJhbWVsUw=="
PAIRS = 3_600  # a Patient and an Encounter each: ~10,800 events with the episodes
PER_BUNDLE = 150
ICD = "http://hl7.org/fhir/sid/icd-10-cm"


def bundle(first: int) -> bytes:
    entries: list[dict[str, Any]] = []
    for n in range(first, min(first + PER_BUNDLE, PAIRS)):
        visit = encounter(
            f"e{n}", f"p{n}", reasonCode=[{"coding": [{"system": ICD, "code": "I10"}]}]
        )
        for resource in (patient(f"p{n}"), visit):
            url = f"{resource['resourceType']}/{resource['id']}"
            entries.append({"resource": resource, "request": {"method": "PUT", "url": url}})
    return orjson.dumps({"resourceType": "Bundle", "type": "transaction", "entry": entries})


class Pusher(threading.Thread):
    """A provider's EHR: pushes each Bundle until it is taken, however often the API
    goes away meanwhile (a transaction is all or nothing, so a retry is safe)."""

    def __init__(self, api: JourneyProcess) -> None:
        super().__init__(daemon=True)
        self.api = api
        self.pushed = 0
        self.retries = 0

    def run(self) -> None:
        headers = {"Authorization": f"Bearer {PUSH_KEY}", "Content-Type": "application/fhir+json"}
        for first in range(0, PAIRS, PER_BUNDLE):
            body = bundle(first)
            while True:
                try:
                    answer = httpx.post(
                        f"{self.api.url}/fhir", content=body, headers=headers, timeout=60
                    )
                    if answer.status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                self.retries += 1
                time.sleep(0.5)
            self.pushed += 1


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    from tests.conftest import throwaway_store_url

    with throwaway_store_url(request.param, request, tmp_path) as url:
        yield url


def test_no_event_is_lost_when_the_api_and_the_worker_are_killed(
    tmp_path: Path, store_url: str
) -> None:
    with Receiver().running() as receiver:
        url = receiver.endpoint("app")
        receiver.trust("app", SECRET)
        config = tmp_path / "journey.toml"
        config.write_text(
            '[[push_clients]]\nsource = "riverside"\nkey_env = "FAULT_PUSH_KEY"\n\n'
            f'[[subscriptions]]\nname = "app"\nurl = "{url}"\nstart = "beginning"\n'
            'secret_env = "APP_SECRET"\n',
            encoding="utf-8",
        )
        env = {
            "JOURNEY_CONFIG": str(config),
            "JOURNEY_DATABASE_URL": store_url,
            "JOURNEY_API_KEYS": "fault-read-key",
            "FAULT_PUSH_KEY": PUSH_KEY,
            "APP_SECRET": SECRET,
            # A killed worker's endpoint is taken over once its lease runs out.
            "JOURNEY_WORKER_LEASE_SECONDS": "3",
            "JOURNEY_WORKER_POLL_SECONDS": "1",
        }
        api = JourneyProcess("serve", tmp_path, env)
        worker = JourneyProcess("worker", tmp_path, env)
        api.start()
        worker.start()
        pusher = Pusher(api)
        engine = create_store_engine(store_url)
        try:
            pusher.start()
            _wait(lambda: pusher.pushed >= 6, "pushes before the API is killed")
            api.kill()
            time.sleep(1)
            api.start()
            _wait(lambda: len(receiver.ids("app")) >= 2_000, "deliveries before the worker dies")
            worker.kill()
            worker.start()
            pusher.join(timeout=600)
            assert not pusher.is_alive(), "the pushes did not finish"
            # Every person's episodes made (journey serve's upkeep), then the API
            # stopped: no event comes after this.
            _wait(lambda: _no_episodes_waiting(engine), "episodes made", 300)
            api.stop()
            _wait(lambda: _all_delivered(engine, receiver), "every event delivered", 600)
            expected = _feed_ids(engine)
            with engine.connect() as conn:
                added = feed_store.EventFilter(["record.added"])
                records = feed_store.read(conn, 0, 1_000_000, added)
        finally:
            worker.stop()
            api.stop()
            engine.dispose()
        taken = receiver.endpoints["app"].taken
        assert receiver.endpoints["app"].bad_signatures == 0
        assert len(expected) >= 10_000
        assert len(records) == PAIRS  # every pushed Encounter is in, once
        assert {d.webhook_id for d in taken} == set(expected)
        first_seen: dict[str, dict[str, Any]] = {}
        for delivery in taken:
            kept = first_seen.setdefault(delivery.webhook_id, delivery.body)
            assert kept == delivery.body, f"{delivery.webhook_id} came again changed"
        # Delivered in the feed's order: after dropping repeats, ids only ever rise.
        order = [int(i.removeprefix("evt_")) for i in dict.fromkeys(d.webhook_id for d in taken)]
        assert order == sorted(order)
        assert pusher.retries >= 1  # the API's death was seen by the pushing client
        print(
            f"\nwebhook faults: {len(expected):,} events, {len(taken) - len(expected)} repeats, "
            f"{pusher.retries} push retries"
        )


def _feed_ids(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        rows = feed_store.read(conn, 0, 1_000_000)
    return [f"evt_{row['seq']}" for row in rows]


def _no_episodes_waiting(engine: Engine) -> bool:
    with engine.connect() as conn:
        return not episodes_store.stale_people(conn, 1)


def _all_delivered(engine: Engine, receiver: Receiver) -> bool:
    return set(receiver.ids("app")) >= set(_feed_ids(engine))


def _wait(done: Any, what: str, seconds: float = 300) -> None:
    deadline = time.monotonic() + seconds
    while not done():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)
