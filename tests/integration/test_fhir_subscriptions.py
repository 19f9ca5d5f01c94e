"""FHIR R4 topic-based Subscriptions (Subscriptions R5 Backport IG): a client creates
a Subscription on /fhir, the worker shakes hands with its rest-hook endpoint, notifies
each event with consecutive event numbers, sends heartbeats, and $status and $events
answer what was sent. Every Bundle is checked against the R4B models."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.subscription import Subscription
from fhir.resources.R4B.subscriptiontopic import SubscriptionTopic
from sqlalchemy import Engine

from integration.api.app import create_app
from integration.config import Settings
from integration.journey.episodes import refresh_episodes
from integration.webhooks.fhir_subscriptions import (
    FILTER_CRITERIA,
    HEARTBEAT_PERIOD,
    PAYLOAD_CONTENT,
    TOPIC,
)
from mappings.rulepack import RulePack
from tests.conftest import ImportFn, encounter, patient, write_ndjson
from tests.servers import JourneyProcess
from tests.webhook_receiver import Receiver, delivering, quick_settings

KEY = "test-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
FHIR = {**AUTH, "Content-Type": "application/fhir+json"}
HOOK_HEADER = ("Authorization", "Bearer endpoint-token")
ICD = "http://hl7.org/fhir/sid/icd-10-cm"


@pytest.fixture
def settings(engine: Engine) -> Settings:
    return quick_settings(engine)


@pytest.fixture
def client(engine: Engine, settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings, engine)) as test_client:
        yield test_client


def subscription(
    endpoint: str,
    filters: tuple[str, ...] = (),
    content: str = "full-resource",
    heartbeat: int | None = None,
    **changes: Any,
) -> dict[str, Any]:
    channel: dict[str, Any] = {
        "type": "rest-hook",
        "endpoint": endpoint,
        "payload": "application/fhir+json",
        "_payload": {"extension": [{"url": PAYLOAD_CONTENT, "valueCode": content}]},
        "header": [f"{HOOK_HEADER[0]}: {HOOK_HEADER[1]}"],
    }
    if heartbeat:
        channel["extension"] = [{"url": HEARTBEAT_PERIOD, "valueUnsignedInt": heartbeat}]
    resource: dict[str, Any] = {
        "resourceType": "Subscription",
        "status": "requested",
        "reason": "care navigator app",
        "criteria": TOPIC,
        "_criteria": {"extension": [{"url": FILTER_CRITERIA, "valueString": f} for f in filters]},
        "channel": channel,
    }
    return {**resource, **changes}


def status_of(bundle: dict[str, Any]) -> dict[str, Any]:
    """The notification's SubscriptionStatus parameters, by name (events as a list)."""
    Bundle.model_validate(bundle)
    assert bundle["type"] == "history"
    parameters = bundle["entry"][0]["resource"]
    assert parameters["resourceType"] == "Parameters"
    found: dict[str, Any] = {"notification-event": []}
    for parameter in parameters["parameter"]:
        if parameter["name"] == "notification-event":
            parts = {p["name"]: p for p in parameter["part"]}
            [journey] = parameter["extension"]
            found["notification-event"].append(
                {
                    "number": int(parts["event-number"]["valueString"]),
                    "focus": parts.get("focus", {}).get("valueReference"),
                    "id": journey["extension"][0]["valueString"],
                    "type": journey["extension"][1]["valueCode"],
                }
            )
        else:
            found[parameter["name"]] = next(
                v for k, v in parameter.items() if k.startswith("value")
            )
    return found


def visits(tmp_path: Path, count: int) -> Path:
    resources: list[dict[str, Any]] = []
    for n in range(count):
        resources.append(patient(f"p{n}"))
        resources.append(
            encounter(f"e{n}", f"p{n}", reasonCode=[{"coding": [{"system": ICD, "code": "I10"}]}])
        )
    return write_ndjson(tmp_path / "visits.ndjson", *resources)


def test_the_topic_is_advertised_and_well_formed(client: TestClient) -> None:
    metadata = client.get("/fhir/metadata").json()
    [resources] = [rest["resource"] for rest in metadata["rest"]]
    [held] = [r for r in resources if r["type"] == "Subscription"]
    assert held["extension"][0]["valueCanonical"] == TOPIC
    assert {o["name"] for o in held["operation"]} == {"status", "events"}
    topic = client.get("/fhir/SubscriptionTopic/journey-change", headers=AUTH)
    assert topic.status_code == 200, topic.text
    assert SubscriptionTopic.model_validate(topic.json()).url == TOPIC


def test_a_subscriber_is_handshaken_notified_in_numbered_order_and_can_catch_up(
    engine: Engine,
    settings: Settings,
    client: TestClient,
    receiver: Receiver,
    tmp_path: Path,
    import_files: ImportFn,
    pack: RulePack,
) -> None:
    url = receiver.endpoint("fhir", fhir_header=HOOK_HEADER)
    body = subscription(url, ("type=record.added,episode.added",), heartbeat=1)
    made = client.post("/fhir/Subscription", headers=FHIR, json=body)
    assert made.status_code == 201, made.text
    created = made.json()
    Subscription.model_validate(created)
    assert created["status"] == "requested"
    assert "header" not in created["channel"]  # the endpoint's credential is not read back
    sub = created["id"]
    assert made.headers["location"].endswith(f"/fhir/Subscription/{sub}")
    taken = receiver.endpoints["fhir"].taken

    with delivering(engine, settings):
        receiver.wait_for(lambda: len(taken) >= 1)
        handshake = status_of(taken[0].body)
        assert handshake["type"] == "handshake"
        assert handshake["events-since-subscription-start"] == "0"
        assert handshake["topic"] == TOPIC
        receiver.wait_for(
            lambda: (
                client.get(f"/fhir/Subscription/{sub}", headers=AUTH).json()["status"] == "active"
            )
        )
        import_files(visits(tmp_path, 3), source="clinic")
        refresh_episodes(engine, pack)
        receiver.wait_for(
            lambda: sum(1 for d in taken if status_of(d.body)["type"] == "event-notification") == 6
        )
        # Idle for more than the 1 s heartbeat period: a heartbeat follows.
        receiver.wait_for(lambda: status_of(taken[-1].body)["type"] == "heartbeat", seconds=10)

    assert receiver.endpoints["fhir"].bad_signatures == 0  # the channel header came each time
    notified = [
        status_of(d.body) for d in taken if status_of(d.body)["type"] == "event-notification"
    ]
    events = [n["notification-event"][0] for n in notified]
    assert [e["number"] for e in events] == [1, 2, 3, 4, 5, 6]
    assert [n["events-since-subscription-start"] for n in notified] == [
        "1",
        "2",
        "3",
        "4",
        "5",
        "6",
    ]
    assert sorted(e["type"] for e in events) == ["episode.added"] * 3 + ["record.added"] * 3
    record = next(e for e in events if e["type"] == "record.added")
    assert record["focus"]["type"] == "Encounter"
    assert record["focus"]["identifier"]["value"]
    episode_notice = next(
        d.body
        for d in taken
        if status_of(d.body)["notification-event"]
        and status_of(d.body)["notification-event"][0]["type"] == "episode.added"
    )
    [_, episode_entry] = episode_notice["entry"]
    assert episode_entry["resource"]["resourceType"] == "EpisodeOfCare"
    episode = client.get(episode_entry["fullUrl"], headers=AUTH)
    assert episode.status_code == 200, episode.text
    assert episode.json()["id"] == episode_entry["resource"]["id"]

    status = client.get(f"/fhir/Subscription/{sub}/$status", headers=AUTH)
    assert status.status_code == 200, status.text
    [entry] = status.json()["entry"]
    parameters = {p["name"]: p for p in entry["resource"]["parameter"]}
    assert parameters["type"]["valueCode"] == "query-status"
    assert parameters["status"]["valueCode"] == "active"
    assert parameters["events-since-subscription-start"]["valueString"] == "6"

    # A client that missed events 2 and 3 asks for them by number.
    missed = client.get(
        f"/fhir/Subscription/{sub}/$events",
        headers=AUTH,
        params={"eventsSinceNumber": 2, "eventsUntilNumber": 3, "content": "id-only"},
    )
    assert missed.status_code == 200, missed.text
    again = status_of(missed.json())
    assert again["type"] == "query-event"
    assert [(e["number"], e["id"]) for e in again["notification-event"]] == [
        (e["number"], e["id"]) for e in events[1:3]
    ]
    assert all("resource" not in entry for entry in missed.json()["entry"][1:])


def test_a_failing_handshake_leaves_the_subscription_in_error_until_the_endpoint_answers(
    engine: Engine, settings: Settings, client: TestClient, receiver: Receiver
) -> None:
    url = receiver.endpoint("down", "failing", fhir_header=HOOK_HEADER)
    sub = client.post("/fhir/Subscription", headers=FHIR, json=subscription(url)).json()["id"]
    with delivering(engine, settings):
        receiver.wait_for(
            lambda: (
                client.get(f"/fhir/Subscription/{sub}", headers=AUTH).json()["status"] == "error"
            )
        )
        held = client.get(f"/fhir/Subscription/{sub}", headers=AUTH).json()
        assert held["error"] == "handshake: answered HTTP 500"
        receiver.endpoints["down"].mode = "good"
        receiver.wait_for(
            lambda: (
                client.get(f"/fhir/Subscription/{sub}", headers=AUTH).json()["status"] == "active"
            )
        )
    assert status_of(receiver.endpoints["down"].taken[0].body)["type"] == "handshake"


@pytest.mark.parametrize(
    ("change", "expression"),
    [
        ({"criteria": "Encounter?status=finished"}, "Subscription.criteria"),
        ({"status": "off"}, "Subscription.status"),
        ({"channel": {"type": "websocket"}}, "Subscription.channel.type"),
        ({"channel": {"type": "rest-hook"}}, "Subscription.channel.endpoint"),
        (
            {"channel": {"type": "rest-hook", "endpoint": "ftp://x.example"}},
            "Subscription.channel.endpoint",
        ),
        (
            {
                "channel": {
                    "type": "rest-hook",
                    "endpoint": "https://x.example",
                    "payload": "text/xml",
                }
            },
            "Subscription.channel.payload",
        ),
        (
            {"_criteria": {"extension": [{"url": FILTER_CRITERIA, "valueString": "colour=red"}]}},
            "Subscription.criteria.extension[0]",
        ),
        (
            {
                "_criteria": {
                    "extension": [{"url": FILTER_CRITERIA, "valueString": "type=record.eaten"}]
                }
            },
            "Subscription.criteria.extension",
        ),
        ({"resourceType": "Patient"}, "resourceType"),
    ],
)
def test_a_subscription_this_server_cannot_honour_is_an_operation_outcome(
    client: TestClient, change: dict[str, Any], expression: str
) -> None:
    answer = client.post(
        "/fhir/Subscription", headers=FHIR, json={**subscription("https://x.example"), **change}
    )
    assert answer.status_code == 400, answer.text
    outcome = answer.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["expression"] == [expression]


def test_bad_requests_on_fhir_subscriptions(client: TestClient) -> None:
    assert (
        client.post("/fhir/Subscription", json=subscription("https://x.example")).status_code == 401
    )
    broken = client.post("/fhir/Subscription", headers=FHIR, content=b"{not json")
    assert broken.status_code == 400
    assert broken.json()["resourceType"] == "OperationOutcome"
    for method, path in [
        ("get", "/fhir/Subscription/nope"),
        ("delete", "/fhir/Subscription/nope"),
        ("get", "/fhir/Subscription/nope/$status"),
        ("get", "/fhir/Subscription/nope/$events"),
        ("get", "/fhir/EpisodeOfCare/nope"),
    ]:
        answer = client.request(method, path, headers=AUTH)
        assert answer.status_code == 404, path
        assert answer.json()["resourceType"] == "OperationOutcome"
    sub = client.post(
        "/fhir/Subscription", headers=FHIR, json=subscription("https://x.example")
    ).json()["id"]
    bad_number = client.get(
        f"/fhir/Subscription/{sub}/$events", headers=AUTH, params={"eventsSinceNumber": 0}
    )
    assert bad_number.status_code == 400
    # A webhook subscription's id is not a FHIR Subscription, nor the other way round.
    assert client.get(f"/subscriptions/{sub}", headers=AUTH).status_code == 404
    listed = client.get("/fhir/Subscription", headers=AUTH).json()
    assert [e["resource"]["id"] for e in listed["entry"]] == [sub]
    assert client.delete(f"/fhir/Subscription/{sub}", headers=AUTH).status_code == 204
    assert client.get(f"/fhir/Subscription/{sub}", headers=AUTH).status_code == 404


async def test_a_fhir_client_subscribes_on_a_real_server_and_the_worker_notifies_it(
    tmp_path: Path, receiver: Receiver
) -> None:
    """fhirpy, unmodified, against `journey serve`; `journey worker` as its own process."""
    from fhirpy import AsyncFHIRClient

    config = tmp_path / "journey.toml"
    config.write_text(
        '[[push_clients]]\nsource = "riverside"\nkey_env = "RIVERSIDE_KEY"\n', encoding="utf-8"
    )
    env = {
        "JOURNEY_CONFIG": str(config),
        "JOURNEY_DATABASE_URL": f"sqlite:///{tmp_path / 'journey.db'}",
        "JOURNEY_API_KEYS": KEY,
        "RIVERSIDE_KEY": "riverside-push-key",
    }
    api = JourneyProcess("serve", tmp_path, {**env, "JOURNEY_PUBLIC_URL": "http://journey.test"})
    worker = JourneyProcess(
        "worker", tmp_path, {**env, "JOURNEY_PUBLIC_URL": "http://journey.test"}
    )
    api.start()
    worker.start()
    try:
        client = AsyncFHIRClient(f"{api.url}/fhir", authorization=f"Bearer {KEY}")
        url = receiver.endpoint("app", fhir_header=HOOK_HEADER)
        made = client.resource("Subscription", **subscription(url, ("type=record.added",)))
        await made.save()
        assert made.id
        assert made["status"] == "requested"
        taken = receiver.endpoints["app"].taken
        receiver.wait_for(lambda: len(taken) >= 1, seconds=30)
        assert status_of(taken[0].body)["type"] == "handshake"

        push = {
            "Authorization": "Bearer riverside-push-key",
            "Content-Type": "application/fhir+json",
        }
        for resource in (patient("p1"), encounter("e1", "p1")):
            url_of = f"{api.url}/fhir/{resource['resourceType']}/{resource['id']}"
            assert httpx.put(url_of, json=resource, headers=push, timeout=30).status_code == 201
        receiver.wait_for(lambda: len(taken) >= 2, seconds=30)
        notice = status_of(taken[1].body)
        assert notice["type"] == "event-notification"
        assert (
            notice["subscription"]["reference"]
            == f"http://journey.test/fhir/Subscription/{made.id}"
        )
        [event] = notice["notification-event"]
        assert (event["number"], event["type"]) == (1, "record.added")
        assert event["focus"]["type"] == "Encounter"

        status = await client.execute(f"Subscription/{made.id}/$status", method="get")
        [entry] = status["entry"]
        by_name = {p["name"]: p for p in entry["resource"]["parameter"]}
        assert by_name["status"]["valueCode"] == "active"
        assert by_name["events-since-subscription-start"]["valueString"] == "1"
    finally:
        worker.stop()
        api.stop()
