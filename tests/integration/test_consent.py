"""A patient's privacy Consent, pushed like any resource, withholds their journey from
the API, the feed and webhook deliveries (for the clients it names, or all), from the
next request on; withdrawn, it restores access."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from integration.api.app import create_app
from integration.config import Settings
from mappings.consent import CLIENT_SYSTEM, CONSENT_SCOPE
from tests.conftest import encounter, patient
from tests.webhook_receiver import Receiver, delivering, quick_settings, subscribe

ADMIN = "consent-admin-key"
NAVIGATOR = "navigator-key"
PUSH = "consent-push-key"


@pytest.fixture
def client(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    monkeypatch.setenv("NAVIGATOR_KEY", NAVIGATOR)
    monkeypatch.setenv("CONSENT_PUSH_KEY", PUSH)
    settings = Settings(
        api_keys=[ADMIN],
        database_url=str(engine.url),
        clients=[
            {
                "id": "navigator",
                "scopes": ["journey/people.read", "journey/feed.read"],
                "key_env": "NAVIGATOR_KEY",
            }
        ],
        push_clients=[{"source": "riverside", "key_env": "CONSENT_PUSH_KEY"}],
    )
    with TestClient(create_app(settings, engine)) as test_client:
        yield test_client


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def push(client: TestClient, resource: dict[str, Any]) -> None:
    url = f"/fhir/{resource['resourceType']}/{resource['id']}"
    headers = {**bearer(PUSH), "Content-Type": "application/fhir+json"}
    answer = client.put(url, json=resource, headers=headers)
    assert answer.status_code in (200, 201), answer.text


def consent(status: str = "active", actors: list[str] | None = None) -> dict[str, Any]:
    provision: dict[str, Any] = {"type": "deny"}
    if actors is not None:
        recipient = {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                    "code": "IRCP",
                }
            ]
        }
        provision["actor"] = [
            {"role": recipient, "reference": {"identifier": {"system": CLIENT_SYSTEM, "value": a}}}
            for a in actors
        ]
    return {
        "resourceType": "Consent",
        "id": "opt-out-1",
        "status": status,
        "scope": {"coding": [{"system": CONSENT_SCOPE, "code": "patient-privacy"}]},
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": {"reference": "Patient/p1"},
        "provision": provision,
    }


def two_people(client: TestClient, key: str = ADMIN) -> tuple[str, str]:
    for resource in (
        patient("p1"),
        encounter("e1", "p1"),
        patient("p2", name=[{"family": "Other", "given": ["Person"]}], birthDate="1955-05-05"),
        encounter("e2", "p2"),
    ):
        push(client, resource)
    people = client.get("/people", headers=bearer(key)).json()["items"]
    by_patient = {p["sources"][0]["patient_id"]: p["id"] for p in people}
    # p1 is not listed to a client from which a Consent already withholds them.
    return by_patient.get("p1", ""), by_patient["p2"]


def visible(client: TestClient, key: str, person: str) -> bool:
    answer = client.get(f"/people/{person}/journey", headers=bearer(key))
    assert answer.status_code in (200, 404)
    return answer.status_code == 200


def feed_people(client: TestClient, key: str) -> set[str]:
    items = client.get("/feed", headers=bearer(key), params={"limit": 1000}).json()["items"]
    return {e["person_id"] for e in items if e["person_id"]}


def test_an_opt_out_withholds_the_person_from_everyone_until_withdrawn(client: TestClient) -> None:
    mine, other = two_people(client)
    assert visible(client, NAVIGATOR, mine)
    push(client, consent())
    for key in (ADMIN, NAVIGATOR):
        assert not visible(client, key, mine)
        assert visible(client, key, other)
        listed = {p["id"] for p in client.get("/people", headers=bearer(key)).json()["items"]}
        assert mine not in listed
        assert other in listed
        assert mine not in feed_people(client, key)
        assert other in feed_people(client, key)
    episodes = client.get("/fhir/EpisodeOfCare", params={"patient": mine}, headers=bearer(ADMIN))
    assert episodes.json()["total"] == 0
    # Withdrawn: the same Consent, inactive. Access is back at the next request.
    push(client, consent(status="inactive"))
    assert visible(client, NAVIGATOR, mine)
    assert mine in feed_people(client, NAVIGATOR)


def test_an_opt_out_naming_a_client_withholds_from_that_client_only(client: TestClient) -> None:
    mine, _ = two_people(client)
    push(client, consent(actors=["navigator"]))
    assert not visible(client, NAVIGATOR, mine)
    assert visible(client, ADMIN, mine)


def test_webhook_deliveries_leave_out_a_withheld_person(
    engine: Engine, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONSENT_PUSH_KEY", PUSH)
    settings = quick_settings(
        engine, push_clients=[{"source": "riverside", "key_env": "CONSENT_PUSH_KEY"}]
    )
    with TestClient(create_app(settings, engine)) as client:
        sub = subscribe(client, receiver, "app", types=["record.added"])
        push(client, consent())  # before p1's data arrives
        _, other = two_people(client, "test-key")
        with delivering(engine, settings):
            receiver.wait_for(lambda: len(receiver.ids("app")) >= 1)
            # Past p1's events (withheld) and p2's (delivered): nothing more comes.
            receiver.wait_for(
                lambda: (
                    client.get(f"/subscriptions/{sub}", headers=bearer("test-key")).json()[
                        "events_behind_at_most"
                    ]
                    == 0
                )
            )
        delivered = {d.body["data"]["person_id"] for d in receiver.endpoints["app"].taken}
    assert delivered == {other}


def test_a_deleted_opt_out_withholds_no_one(client: TestClient) -> None:
    mine, _ = two_people(client)
    push(client, consent())
    assert not visible(client, NAVIGATOR, mine)
    headers = {**bearer(PUSH), "Content-Type": "application/fhir+json"}
    assert client.delete("/fhir/Consent/opt-out-1", headers=headers).status_code == 200
    assert visible(client, NAVIGATOR, mine)
    assert mine in feed_people(client, NAVIGATOR)
