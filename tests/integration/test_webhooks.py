"""Webhooks: subscriptions made through the API, deliveries signed per Standard Webhooks
and verified by a real receiver on loopback, one queue per endpoint (a failing or
slow endpoint never holds up a good one), backoff, dead letters, replay, rotation."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from integration.api.app import create_app
from integration.config import Settings
from integration.errors import ConfigError
from integration.journey.episodes import refresh_episodes
from integration.journey.rule_packs import store_pack
from integration.store import feed as feed_store
from integration.webhooks.config import SubscriptionConfig
from integration.webhooks.delivery import retry_delay
from integration.webhooks.signing import InvalidWebhookSecret
from integration.webhooks.subscriptions import InvalidSubscription, apply_config
from mappings.rulepack import RulePack
from tests.conftest import ImportFn, encounter, patient, write_ndjson
from tests.webhook_receiver import Receiver, delivering, quick_settings, subscribe

KEY = "test-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
ICD = "http://hl7.org/fhir/sid/icd-10-cm"
SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


@pytest.fixture
def settings_of(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Settings a test changes (parametrized indirectly); none by default."""
    return dict(getattr(request, "param", {}))


@pytest.fixture
def settings(engine: Engine, settings_of: dict[str, Any]) -> Settings:
    """One settings object for the API and the deliverer, as one config gives both."""
    return quick_settings(engine, **settings_of)


@pytest.fixture
def client(engine: Engine, settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings, engine)) as test_client:
        yield test_client


def feed_ids(engine: Engine, **wanted: Any) -> list[str]:
    with engine.connect() as conn:
        rows = feed_store.read(conn, 0, 100_000, feed_store.EventFilter(**wanted))
    return [f"evt_{row['seq']}" for row in rows]


def settled_feed_ids(engine: Engine) -> list[str]:
    """The feed once the episodes an import marked are made, as `journey serve`'s upkeep
    would make them a little later: read before that, the upkeep's events came after the
    expected list, and a test waiting for exactly that many never saw it."""
    refresh_episodes(engine, store_pack(engine))
    return feed_ids(engine)


def visits(tmp_path: Path, name: str, count: int, first_patient: int = 0) -> Path:
    resources: list[dict[str, Any]] = []
    for n in range(count):
        pid = f"p{first_patient + n}"
        resources.append(patient(pid))
        resources.append(
            encounter(
                f"e{first_patient + n}",
                pid,
                reasonCode=[{"coding": [{"system": ICD, "code": "I10"}]}],
            )
        )
    return write_ndjson(tmp_path / name, *resources)


def test_every_event_arrives_once_in_order_signed_and_as_the_feed_tells_it(
    engine: Engine,
    settings: Settings,
    client: TestClient,
    receiver: Receiver,
    tmp_path: Path,
    import_files: ImportFn,
) -> None:
    sub = subscribe(client, receiver, "good", payload="full")
    import_files(visits(tmp_path, "a.ndjson", 5), source="clinic")
    expected = feed_ids(engine)
    assert len(expected) >= 10
    with delivering(engine, settings):
        receiver.wait_for(lambda: len(receiver.ids("good")) >= len(expected))
        time.sleep(0.3)  # nothing more should come
    good = receiver.endpoints["good"]
    assert good.bad_signatures == 0
    assert receiver.ids("good") == expected
    feed = client.get("/feed", headers=AUTH, params={"payload": "full", "limit": 1000}).json()[
        "items"
    ]
    for delivery, event in zip(good.taken, feed, strict=True):
        assert delivery.body == {"type": event["type"], "timestamp": event["time"], "data": event}
    state = client.get(f"/subscriptions/{sub}", headers=AUTH).json()
    assert state["state"] == "delivering"
    assert state["delivered"] == len(expected)
    assert state["delivered_up_to"] == expected[-1]
    assert "secret" not in state


def test_a_failing_and_a_slow_endpoint_never_delay_a_good_one(
    engine: Engine,
    settings: Settings,
    client: TestClient,
    receiver: Receiver,
    tmp_path: Path,
    import_files: ImportFn,
) -> None:
    failing = subscribe(client, receiver, "failing", "failing")
    slow = subscribe(client, receiver, "slow", "slow")
    subscribe(client, receiver, "sluggish", "sluggish")
    subscribe(client, receiver, "good")
    import_files(visits(tmp_path, "a.ndjson", 20), source="clinic")
    expected = feed_ids(engine)
    with delivering(engine, settings):
        started = time.monotonic()
        receiver.wait_for(lambda: len(receiver.ids("good")) == len(expected), seconds=60)
        took = time.monotonic() - started
        # The slow endpoint answers after 3 s, past the 0.5 s timeout: not one of its
        # deliveries has counted yet, and the good one did not wait for it, nor for
        # the sluggish one (0.1 s an event: 4 s for the 40 events).
        assert receiver.ids("slow") == []
        assert len(receiver.ids("sluggish")) < len(expected)
        assert receiver.endpoints["failing"].refused >= 1
        assert took < 10.0, f"the good endpoint took {took:.1f} s"
        # Slow but within the timeout: everything arrives, in order, once.
        receiver.wait_for(lambda: receiver.ids("sluggish") == expected, seconds=90)
        receiver.wait_for(
            lambda: client.get(f"/subscriptions/{slow}", headers=AUTH).json()["attempts"] >= 1
        )
    failed = client.get(f"/subscriptions/{failing}", headers=AUTH).json()
    assert failed["state"] == "retrying"
    assert failed["last_error"] == "answered HTTP 500"
    assert failed["delivered_up_to"] is None
    assert failed["next_attempt_at"] is not None
    late = client.get(f"/subscriptions/{slow}", headers=AUTH).json()
    assert late["last_error"] == "no answer within 0.5 s"


def test_backoff_doubles_with_jitter_up_to_the_longest_wait() -> None:
    # An endpoint down for days fails thousands of times (2.0 ** 1024 overflows a float).
    for attempts, ceiling in [(1, 5), (2, 10), (3, 20), (8, 640), (30, 3600), (5000, 3600)]:
        waits = [retry_delay(attempts, 5, 3600) for _ in range(200)]
        assert all(ceiling / 2 <= w <= ceiling for w in waits), attempts
        assert max(waits) - min(waits) > ceiling / 10  # jittered, not fixed


@pytest.mark.parametrize("settings_of", [{"webhook_give_up_hours": 1 / 3600}], indirect=True)
def test_an_endpoint_failing_past_the_give_up_time_dead_letters_then_replay_delivers(
    engine: Engine,
    settings: Settings,
    client: TestClient,
    receiver: Receiver,
    tmp_path: Path,
    import_files: ImportFn,
) -> None:
    sub = subscribe(client, receiver, "down", "failing")
    import_files(visits(tmp_path, "a.ndjson", 2), source="clinic")
    expected = settled_feed_ids(engine)
    with delivering(engine, settings):
        receiver.wait_for(
            lambda: (
                client.get(f"/subscriptions/{sub}", headers=AUTH).json()["dead_letters"]
                == len(expected)
            ),
            seconds=60,
        )
    state = client.get(f"/subscriptions/{sub}", headers=AUTH).json()
    assert state["state"] == "dead_lettering"
    assert state["delivered_up_to"] == expected[-1]
    letters = client.get(f"/subscriptions/{sub}/dead-letters", headers=AUTH).json()["items"]
    assert [letter["event"] for letter in letters] == expected
    assert all(letter["last_error"] == "answered HTTP 500" for letter in letters)
    assert letters[0]["attempts"] >= 2

    # The endpoint is mended; replay from the first dead letter delivers them all.
    receiver.endpoints["down"].mode = "good"
    replayed = client.post(
        f"/subscriptions/{sub}/replay", headers=AUTH, json={"from_event": expected[0]}
    )
    assert replayed.status_code == 200, replayed.text
    with delivering(engine, settings):
        receiver.wait_for(lambda: receiver.ids("down") == expected)
    assert client.get(f"/subscriptions/{sub}", headers=AUTH).json()["state"] == "delivering"


def test_a_rotated_secret_signs_beside_the_old_one_during_the_overlap(
    engine: Engine,
    settings: Settings,
    client: TestClient,
    receiver: Receiver,
    tmp_path: Path,
    import_files: ImportFn,
) -> None:
    sub = subscribe(client, receiver, "rotating")
    old = receiver.endpoints["rotating"].secrets[0]
    rotated = client.post(f"/subscriptions/{sub}/rotate-secret", headers=AUTH)
    assert rotated.status_code == 200, rotated.text
    new = rotated.json()["secret"]
    assert new != old
    assert new.startswith("whsec_")
    # The receiver checks that each secret on its own verifies the delivery.
    receiver.trust("rotating", old, new)
    import_files(visits(tmp_path, "a.ndjson", 1), source="clinic")
    with delivering(engine, settings):
        receiver.wait_for(lambda: len(receiver.ids("rotating")) == len(feed_ids(engine)))
    endpoint = receiver.endpoints["rotating"]
    assert endpoint.bad_signatures == 0
    assert {d.signatures for d in endpoint.taken} == {2}
    state = client.get(f"/subscriptions/{sub}", headers=AUTH).json()
    assert state["secret_rotating_until"] == rotated.json()["previous_valid_until"]


def test_filters_select_by_type_source_person_and_concern(
    engine: Engine,
    settings: Settings,
    client: TestClient,
    receiver: Receiver,
    tmp_path: Path,
    import_files: ImportFn,
    pack: RulePack,
) -> None:
    subscribe(client, receiver, "records", types=["record.added"])
    subscribe(client, receiver, "payer", sources=["payer_one"])
    subscribe(client, receiver, "hypertension", concerns=["icd10cm:I10"])
    import_files(visits(tmp_path, "a.ndjson", 2), source="clinic")
    import_files(visits(tmp_path, "b.ndjson", 2, first_patient=10), source="payer_one")
    refresh_episodes(engine, pack)
    people = client.get("/feed", headers=AUTH, params={"types": "person.created"}).json()["items"]
    someone = people[0]["person_id"]
    subscribe(client, receiver, "someone", people=[someone], start="beginning")
    expected = {
        "records": feed_ids(engine, types=["record.added"]),
        "payer": feed_ids(engine, sources=["payer_one"]),
        "hypertension": feed_ids(engine, concerns=["icd10cm:I10"]),
        "someone": feed_ids(engine, people=[someone]),
    }
    assert len(expected["records"]) == 4
    assert len(expected["hypertension"]) == 4  # one episode per person
    assert set(expected["payer"]) < set(feed_ids(engine))
    with delivering(engine, settings):
        for path, ids in expected.items():
            receiver.wait_for(lambda path=path, ids=ids: receiver.ids(path) == ids)
    payer = receiver.endpoints["payer"].taken
    assert {d.body["type"] for d in payer} >= {"record.added", "person.created", "episode.added"}
    assert all(d.body["data"]["person_id"] == someone for d in receiver.endpoints["someone"].taken)


@pytest.mark.parametrize(
    ("body", "name"),
    [
        ({"url": "ftp://example.org/hook"}, "url"),
        ({"url": "/relative"}, "url"),
        ({"url": "https://user:pw@example.org/hook"}, "url"),
        ({"url": "https://example.org/hook", "types": ["record.eaten"]}, "types"),
        ({"url": "https://example.org/hook", "sources": ["no spaces"]}, "sources"),
    ],
)
def test_a_subscription_that_cannot_be_honoured_is_a_named_problem(
    client: TestClient, body: dict[str, Any], name: str
) -> None:
    answer = client.post("/subscriptions", headers=AUTH, json=body)
    assert answer.status_code == 400
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["invalid_params"][0]["name"] == name
    assert "user:pw" not in answer.text


def test_bad_requests_on_subscriptions_are_problems(client: TestClient, receiver: Receiver) -> None:
    assert client.post("/subscriptions", json={"url": "https://x.org"}).status_code == 401
    extra = client.post("/subscriptions", headers=AUTH, json={"url": "https://x.org", "colour": 1})
    assert extra.status_code == 400
    nul = client.post("/subscriptions", headers=AUTH, json={"url": "https://x.org/\u0000"})
    assert nul.status_code == 400
    for method, path in [
        ("get", "/subscriptions/whk_nope"),
        ("delete", "/subscriptions/whk_nope"),
        ("post", "/subscriptions/whk_nope/rotate-secret"),
        ("get", "/subscriptions/whk_nope/dead-letters"),
    ]:
        answer = client.request(method, path, headers=AUTH)
        assert answer.status_code == 404, path
        assert "whk_nope" in answer.json()["detail"]
    sub = subscribe(client, receiver, "any")
    never = client.post(
        f"/subscriptions/{sub}/replay", headers=AUTH, json={"from_event": "evt_999"}
    )
    assert never.status_code == 400
    assert "evt_999" in never.json()["detail"]
    malformed = client.post(f"/subscriptions/{sub}/replay", headers=AUTH, json={"from_event": "7"})
    assert malformed.status_code == 400
    assert client.delete(f"/subscriptions/{sub}", headers=AUTH).status_code == 204
    assert client.get(f"/subscriptions/{sub}", headers=AUTH).status_code == 404


def test_configured_subscriptions_are_kept_in_the_store_and_keep_their_position(
    engine: Engine, client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOOK_SECRET", SECRET)
    table = SubscriptionConfig(
        name="care-app", url="https://care.example/hook", secret_env="HOOK_SECRET"
    )
    apply_config(engine, [table], "journey.toml")
    apply_config(
        engine, [table.model_copy(update={"url": "https://care.example/v2"})], "journey.toml"
    )
    [kept] = client.get("/subscriptions", headers=AUTH).json()["items"]
    assert kept["id"] == "care-app"
    assert kept["url"] == "https://care.example/v2"
    assert kept["managed_by"] == "config"
    assert client.delete("/subscriptions/care-app", headers=AUTH).status_code == 409
    assert client.post("/subscriptions/care-app/rotate-secret", headers=AUTH).status_code == 409


@pytest.mark.parametrize(
    ("secret", "error", "says"),
    [
        (None, ConfigError, "secret_env: environment variable HOOK_SECRET is not set"),
        ("plain-text", InvalidWebhookSecret, "starts with 'whsec_'"),
        ("whsec_c2hvcnQ=", InvalidWebhookSecret, "24 to 64 bytes"),
        ("whsec_***", InvalidWebhookSecret, "not base64"),
    ],
)
def test_a_configured_subscription_with_a_bad_secret_is_refused_naming_where(
    engine: Engine,
    monkeypatch: pytest.MonkeyPatch,
    secret: str | None,
    error: type[Exception],
    says: str,
) -> None:
    if secret is None:
        monkeypatch.delenv("HOOK_SECRET", raising=False)
    else:
        monkeypatch.setenv("HOOK_SECRET", secret)
    table = SubscriptionConfig(
        name="care-app", url="https://care.example/hook", secret_env="HOOK_SECRET"
    )
    with pytest.raises(error) as raised:
        apply_config(engine, [table], "journey.toml")
    assert "journey.toml: subscriptions[0] (subscription 'care-app')" in str(raised.value)
    assert says in str(raised.value)
    if secret:
        assert secret not in str(raised.value)


def test_a_configured_subscription_with_a_bad_url_names_the_table(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOOK_SECRET", SECRET)
    table = SubscriptionConfig(name="care-app", url="mailto:care@example", secret_env="HOOK_SECRET")
    with pytest.raises(InvalidSubscription, match=r"subscriptions\[0\].*url: an absolute http"):
        apply_config(engine, [table], "journey.toml")
