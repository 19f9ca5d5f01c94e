"""Clients limited to a population, tried as an attacker would: a clinic's app and a
payer's app share one store. Each sees the people its population holds (a person
known to both is seen by both, with the whole journey), and to each the other's
people are nobody: the same 404, the same statements run, never listed or counted,
not through a search parameter, a crafted cursor, the feed, $match or a webhook.

Who is in which population, written before the code (the people pushed below):
- Alice: a clinic Patient and a payer Patient sharing her SSN, so one person. In
  both populations.
- Bob: a clinic Patient only. The clinic's.
- Carol: a payer Patient only. The payer's; on the payer's member roster.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError
from sqlalchemy import Engine, event

from integration.access.clients import ClientConfig
from integration.api.app import create_app
from integration.api.cursors import encode_cursor
from integration.journey.upkeep import THREAD_NAME as UPKEEP_THREAD
from integration.store.populations import replace_roster
from integration.store.wal import THREAD_NAME as WAL_THREAD
from mappings.consent import CONSENT_SCOPE
from tests.access.jwks_server import JwksServer
from tests.access.tokens import AUDIENCE, ISSUER, Issuer
from tests.conftest import SSN, encounter, person
from tests.webhook_receiver import Receiver, delivering, quick_settings, subscribe

ADMIN = "test-key"  # quick_settings' key: every scope, everyone
CLINIC_APP = "clinic-app-key"
PAYER_APP = "payer-app-key"
ROSTER_APP = "roster-app-key"
PUSH = {"clinic": "clinic-push-key", "payer": "payer-push-key"}
APP_SCOPES = ["journey/people.read", "journey/feed.read", "journey/subscriptions.manage"]


def clients() -> list[dict[str, Any]]:
    return [
        {"id": "clinic-app", "scopes": APP_SCOPES, "key_env": "CLINIC_APP", "sources": ["clinic"]},
        {"id": "payer-app", "scopes": APP_SCOPES, "key_env": "PAYER_APP", "sources": ["payer"]},
        {
            "id": "roster-app",
            "scopes": ["journey/people.read"],
            "key_env": "ROSTER_APP",
            "rosters": ["payer"],
        },
        # An OAuth client: no key; its table gives tokens naming it a population.
        {"id": "clinic-oauth", "scopes": ["journey/people.read"], "sources": ["clinic"]},
    ]


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLINIC_APP", CLINIC_APP)
    monkeypatch.setenv("PAYER_APP", PAYER_APP)
    monkeypatch.setenv("ROSTER_APP", ROSTER_APP)
    for source, key in PUSH.items():
        monkeypatch.setenv(f"PUSH_{source.upper()}", key)


def settings_for(engine: Engine, **extra: Any) -> Any:
    return quick_settings(
        engine,
        clients=clients(),
        push_clients=[{"source": s, "key_env": f"PUSH_{s.upper()}"} for s in PUSH],
        **extra,
    )


@pytest.fixture
def client(engine: Engine, env: None) -> Iterator[TestClient]:
    with TestClient(create_app(settings_for(engine), engine)) as test_client:
        yield test_client


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def push(client: TestClient, source: str, resource: dict[str, Any]) -> None:
    headers = {**bearer(PUSH[source]), "Content-Type": "application/fhir+json"}
    url = f"/fhir/{resource['resourceType']}/{resource['id']}"
    answer = client.put(url, json=resource, headers=headers)
    assert answer.status_code in (200, 201), answer.text


ALICE = {"given": ["Alice"], "family": "Lindqvist"}
BOB = {"given": ["Bob"], "family": "Marangoni"}
CAROL = {"given": ["Carol"], "family": "Oyelaran"}


def three_people(client: TestClient) -> dict[str, str]:
    """Alice (clinic and payer), Bob (clinic), Carol (payer): name -> person id."""
    pushes = [
        ("clinic", person("c-alice", ssn="111-11-1111", name=[ALICE], birth_date="1961-02-03")),
        ("payer", person("m-alice", ssn="111-11-1111", name=[ALICE], birth_date="1961-02-03")),
        ("clinic", person("c-bob", ssn="222-22-2222", name=[BOB], birth_date="1974-07-08")),
        ("payer", person("m-carol", ssn="333-33-3333", name=[CAROL], birth_date="1988-11-12")),
        ("clinic", encounter("ce-alice", "c-alice")),
        ("payer", encounter("pe-alice", "m-alice")),
        ("clinic", encounter("ce-bob", "c-bob")),
        ("payer", encounter("pe-carol", "m-carol")),
    ]
    for source, resource in pushes:
        push(client, source, resource)
    everyone = client.get("/people", headers=bearer(ADMIN)).json()["items"]
    assert len(everyone) == 3, "Alice's two Patients are one person"
    names = {"c-alice": "Alice", "c-bob": "Bob", "m-carol": "Carol"}
    return {
        names[link["patient_id"]]: p["id"]
        for p in everyone
        for link in p["sources"]
        if link["patient_id"] in names
    }


def listed(client: TestClient, key: str, **params: Any) -> list[str]:
    answer = client.get("/people", headers=bearer(key), params=params)
    assert answer.status_code == 200, answer.text
    return [p["id"] for p in answer.json()["items"]]


@pytest.mark.parametrize("store_url", ["sqlite", "postgresql"], indirect=True)
def test_each_app_sees_its_population_and_the_other_people_are_nobody(
    client: TestClient,
) -> None:
    who = three_people(client)
    alice, bob, carol = who["Alice"], who["Bob"], who["Carol"]
    assert set(listed(client, CLINIC_APP)) == {alice, bob}
    assert set(listed(client, PAYER_APP)) == {alice, carol}
    # A person both know is seen whole: the journey across both sources (here one visit
    # both recorded, so one record joined from the two).
    journey = client.get(f"/people/{alice}/journey", headers=bearer(CLINIC_APP)).json()
    sources = {item["source"]["source"] for item in journey["items"]}
    sources |= {j["source"] for item in journey["items"] for j in item["joined"]}
    assert sources == {"clinic", "payer"}
    for route, status in (("", 404), ("/journey", 404), ("/episodes", 404), ("/history", 403)):
        theirs = client.get(f"/people/{carol}{route}", headers=bearer(CLINIC_APP))
        nobody = client.get(f"/people/no-such-person{route}", headers=bearer(CLINIC_APP))
        assert theirs.status_code == nobody.status_code == status, route
        assert theirs.json()["detail"].replace(carol, "X") == nobody.json()["detail"].replace(
            "no-such-person", "X"
        )
        assert client.get(f"/people/{bob}{route}", headers=bearer(PAYER_APP)).status_code == status


def test_no_search_parameter_or_cursor_reaches_outside_the_population(
    client: TestClient,
) -> None:
    who = three_people(client)
    alice, bob, carol = who["Alice"], who["Bob"], who["Carol"]
    assert listed(client, CLINIC_APP, identifier=f"{SSN}|333-33-3333") == []
    assert listed(client, PAYER_APP, identifier=f"{SSN}|333-33-3333") == [carol]
    # One a page: every page is full and the walk ends with the clinic's two people.
    seen, cursor = [], None
    while True:
        params = {"limit": 1, **({"cursor": cursor} if cursor else {})}
        page = client.get("/people", headers=bearer(CLINIC_APP), params=params).json()
        seen += [p["id"] for p in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
        assert len(page["items"]) == 1
    assert sorted(seen) == sorted([alice, bob])
    # A cursor crafted at an outsider's id reads on from there: no outsider, and the same
    # page as a cursor at an id that exists nowhere but sorts just before it.
    crafted = {"cursor": encode_cursor([carol]), "limit": 10}
    before = {"cursor": encode_cursor([carol[:-1]]), "limit": 10}
    from_carol = listed(client, CLINIC_APP, **crafted)
    assert carol not in from_carol
    assert from_carol == [p for p in listed(client, CLINIC_APP, **before) if p != carol]
    # The feed: a person filter naming an outsider selects nothing.
    feed = client.get("/feed", headers=bearer(CLINIC_APP), params={"limit": 1000}).json()
    assert {e["person_id"] for e in feed["items"]} == {alice, bob}
    outsider = client.get("/feed", headers=bearer(CLINIC_APP), params={"person": carol}).json()
    assert outsider["items"] == []
    # A feed cursor crafted just before each of Carol's events reads on past them.
    everything = client.get("/feed", headers=bearer(ADMIN), params={"limit": 1000}).json()
    for change in everything["items"]:
        if change["person_id"] != carol:
            continue
        seq = int(change["id"].removeprefix("evt_"))
        crafted_feed = {"after": encode_cursor([str(seq - 1)]), "limit": 1}
        page = client.get("/feed", headers=bearer(CLINIC_APP), params=crafted_feed).json()
        assert all(e["person_id"] in (alice, bob) for e in page["items"])
    # EpisodeOfCare and $match on /fhir.
    episodes = client.get(
        "/fhir/EpisodeOfCare", params={"patient": carol}, headers=bearer(CLINIC_APP)
    ).json()
    assert episodes["total"] == 0
    carol_again = person("probe", ssn="333-33-3333", name=[CAROL], birth_date="1988-11-12")
    body = {
        "resourceType": "Parameters",
        "parameter": [{"name": "resource", "resource": carol_again}],
    }
    headers = {"Content-Type": "application/fhir+json"}
    for key, expected in ((CLINIC_APP, 0), (PAYER_APP, 1)):
        found = client.post("/fhir/Patient/$match", json=body, headers={**headers, **bearer(key)})
        assert found.status_code == 200, found.text
        assert len(found.json().get("entry", [])) == expected, key


BACKGROUND_THREADS = {UPKEEP_THREAD, WAL_THREAD, "audit"}


def test_an_outsider_and_nobody_cost_the_same_statements(
    client: TestClient, engine: Engine
) -> None:
    """Timing must not tell them apart: the same statements run for both (a count, not a
    clock, so that the test cannot flake)."""
    who = three_people(client)
    statements: list[str] = []

    def note(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        # The serve's own background threads (upkeep, WAL checkpoints, audit writer) run
        # on their own clocks; only what the requests ran is compared.
        if threading.current_thread().name not in BACKGROUND_THREADS:
            statements.append(statement)

    event.listen(engine, "before_cursor_execute", note)
    try:
        counts = {}
        for label, whom in (("outsider", who["Carol"]), ("nobody", "p" * len(who["Carol"]))):
            for route in ("", "/journey", "/episodes"):
                statements.clear()
                answer = client.get(f"/people/{whom}{route}", headers=bearer(CLINIC_APP))
                assert answer.status_code == 404
                counts[label, route] = [s.split()[0] for s in statements if "audit" not in s]
    finally:
        event.remove(engine, "before_cursor_execute", note)
    for route in ("", "/journey", "/episodes"):
        assert counts["outsider", route], "the statements are seen"
        assert counts["outsider", route] == counts["nobody", route], route


def report(client: TestClient, key: str) -> dict[str, Any]:
    """The outcome report once `journey serve`'s upkeep has built the episodes."""
    deadline = time.monotonic() + 20
    while True:
        answer: dict[str, Any] = client.get("/metrics/outcomes", headers=bearer(key)).json()
        if answer["people_pending"] == 0:
            return answer
        assert time.monotonic() < deadline, answer
        time.sleep(0.1)


def test_cohort_measures_count_only_the_population_less_the_withheld(
    client: TestClient,
) -> None:
    three_people(client)
    assert report(client, ADMIN)["people"] == 3, "each person's visit made an episode"
    assert report(client, CLINIC_APP)["people"] == report(client, PAYER_APP)["people"] == 2
    # Bob opts out: from the next request on, no one's measures count him.
    push(client, "clinic", opt_out("c-bob"))
    assert report(client, ADMIN)["people"] == 2
    assert report(client, CLINIC_APP)["people"] == 1


def opt_out(patient_id: str) -> dict[str, Any]:
    return {
        "resourceType": "Consent",
        "id": f"opt-out-{patient_id}",
        "status": "active",
        "scope": {"coding": [{"system": CONSENT_SCOPE, "code": "patient-privacy"}]},
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": {"reference": f"Patient/{patient_id}"},
        "provision": {"type": "deny"},
    }


def test_a_member_roster_is_a_population_and_leaving_it_leaves_the_view(
    client: TestClient, engine: Engine
) -> None:
    who = three_people(client)
    assert listed(client, ROSTER_APP) == [], "no roster read yet: nobody"
    with engine.begin() as conn:
        replace_roster(conn, "payer", ["m-alice", "m-carol"])
    assert set(listed(client, ROSTER_APP)) == {who["Alice"], who["Carol"]}
    with engine.begin() as conn:  # Carol left the plan; the next sync reads the roster
        replace_roster(conn, "payer", ["m-alice"])
    assert listed(client, ROSTER_APP) == [who["Alice"]]
    assert client.get(f"/people/{who['Carol']}", headers=bearer(ROSTER_APP)).status_code == 404


def test_a_limited_client_holds_no_store_wide_scope() -> None:
    with pytest.raises(ValidationError, match=r"operations\.read"):
        ClientConfig(
            id="x",
            scopes=["journey/people.read", "journey/operations.read"],
            key_sha256="0" * 64,
            sources=["clinic"],
        )
    with pytest.raises(ValidationError, match="not a source name"):
        ClientConfig(id="x", scopes=["journey/people.read"], key_sha256="0" * 64, rosters=["a b"])


def test_an_oauth_client_listed_without_a_key_is_held_to_its_population(
    engine: Engine, env: None
) -> None:
    issuer = Issuer()
    issuer.add_key("k1")
    with JwksServer(issuer) as jwks:
        oauth = {"oauth_issuer": ISSUER, "oauth_audience": AUDIENCE, "oauth_jwks_url": jwks.url}
        with TestClient(create_app(settings_for(engine, **oauth), engine)) as client:
            who = three_people(client)
            # Its token asks for more than reading; a population allows only reading.
            token = issuer.token(
                scope="system/*.rs journey/operations.read", client_id="clinic-oauth"
            )
            assert set(listed(client, token)) == {who["Alice"], who["Bob"]}
            assert client.get("/status", headers=bearer(token)).status_code == 403
            unlisted = issuer.token(scope="system/*.rs", client_id="someone-else")
            assert len(listed(client, unlisted)) == 3
        strict = {**oauth, "oauth_listed_clients_only": True}
        with TestClient(create_app(settings_for(engine, **strict), engine)) as client:
            refused = client.get("/people", headers=bearer(unlisted))
            assert refused.status_code == 401
            assert "not one this server lists" in refused.json()["detail"]
            assert client.get("/people", headers=bearer(token)).status_code == 200


def test_a_limited_apps_webhook_gets_its_population_only_and_others_cannot_touch_it(
    engine: Engine, env: None, receiver: Receiver
) -> None:
    settings = settings_for(engine)
    with TestClient(create_app(settings, engine)) as client:
        mine = subscribe(client, receiver, "clinic", key=CLINIC_APP, types=["record.added"])
        admins = subscribe(client, receiver, "admin", types=["record.added"])
        who = three_people(client)
        # The payer's app neither lists nor reads, replays or removes the clinic's.
        theirs = client.get("/subscriptions", headers=bearer(PAYER_APP)).json()["items"]
        assert theirs == []
        for method, path in (
            ("get", f"/subscriptions/{mine}"),
            ("delete", f"/subscriptions/{mine}"),
            ("post", f"/subscriptions/{mine}/rotate-secret"),
            ("get", f"/subscriptions/{mine}/dead-letters"),
        ):
            answer = client.request(method, path, headers=bearer(PAYER_APP))
            assert answer.status_code == 404, (method, path)
        own = client.get("/subscriptions", headers=bearer(CLINIC_APP)).json()["items"]
        assert [s["id"] for s in own] == [mine]
        assert {
            s["id"] for s in client.get("/subscriptions", headers=bearer(ADMIN)).json()["items"]
        } == {mine, admins}
        with delivering(engine, settings):
            receiver.wait_for(lambda: len(receiver.ids("admin")) >= 4)

            def behind(sub: str) -> int:
                view = client.get(f"/subscriptions/{sub}", headers=bearer(ADMIN)).json()
                return int(view["events_behind_at_most"])

            receiver.wait_for(lambda: behind(mine) == 0)
    delivered = {d.body["data"]["person_id"] for d in receiver.endpoints["clinic"].taken}
    assert delivered == {who["Alice"], who["Bob"]}
    everyone = {d.body["data"]["person_id"] for d in receiver.endpoints["admin"].taken}
    assert everyone == {who["Alice"], who["Bob"], who["Carol"]}
