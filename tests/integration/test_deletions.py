"""A deletion pushed to /fhir and what the rest of the store does with it, in process
on both backends: a version arriving later by another way in (an import under the
same source) stays history when it is no newer than the deletion; the kept episodes
(what the cohort measures read) follow; deleted evidence stops counting."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from integration.api.app import create_app
from integration.config import Settings
from integration.journey.episodes import refresh_episodes
from mappings.rulepack import RulePack
from tests.conftest import ImportFn, encounter, patient, push_put, write_ndjson

API_KEY = "deletions-api-key"
PUSH_KEY = "deletions-push-key"
SOURCE = "riverside"
API = {"Authorization": f"Bearer {API_KEY}"}
PUSH = {"Authorization": f"Bearer {PUSH_KEY}", "Content-Type": "application/fhir+json"}
ICD = "http://hl7.org/fhir/sid/icd-10-cm"


@pytest.fixture
def client(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    monkeypatch.setenv("DELETIONS_PUSH_KEY", PUSH_KEY)
    settings = Settings(
        api_keys=[API_KEY],
        database_url=str(engine.url),
        push_clients=[{"source": SOURCE, "key_env": "DELETIONS_PUSH_KEY"}],
    )
    with TestClient(create_app(settings, engine)) as test_client:
        yield test_client


def put(client: TestClient, resource: dict[str, Any]) -> None:
    push_put(client, resource, PUSH)


def delete(client: TestClient, name: str) -> None:
    answer = client.delete(f"/fhir/{name}", headers=PUSH)
    assert answer.status_code == 200, answer.text


def listed_patients(client: TestClient) -> set[str]:
    people = client.get("/people", headers=API).json()["items"]
    return {s["patient_id"] for p in people for s in p["sources"]}


def events(client: TestClient, types: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = client.get(
        "/feed", headers=API, params={"types": types, "limit": 1000}
    ).json()["items"]
    return items


def dated(resource: dict[str, Any], when: str) -> dict[str, Any]:
    return {**resource, "meta": {"lastUpdated": when}}


def test_an_import_no_newer_than_a_deletion_stays_history(
    client: TestClient, import_files: ImportFn, tmp_path: Path
) -> None:
    put(client, patient("p1"))
    delete(client, "Patient/p1")
    # The source's export, made before it deleted the Patient, arrives afterwards.
    import_files(
        write_ndjson(tmp_path / "old.ndjson", dated(patient("p1"), "2020-05-01T00:00:00Z")),
        source=SOURCE,
    )
    assert client.get("/fhir/Patient/p1", headers=PUSH).status_code == 410
    assert "p1" not in listed_patients(client)

    # Made after the deletion: the Patient is back.
    import_files(
        write_ndjson(tmp_path / "new.ndjson", dated(patient("p1"), "2999-01-01T00:00:00Z")),
        source=SOURCE,
    )
    assert client.get("/fhir/Patient/p1", headers=PUSH).status_code == 200
    assert "p1" in listed_patients(client)


def test_kept_episodes_and_the_feed_follow_a_deletion(
    client: TestClient, engine: Engine, pack: RulePack
) -> None:
    put(client, patient("p1"))
    put(client, encounter("e1", "p1", reasonCode=[{"coding": [{"system": ICD, "code": "I10"}]}]))
    refresh_episodes(engine, pack)
    [added] = events(client, "episode.added")
    person = added["person_id"]

    delete(client, "Encounter/e1")
    refresh_episodes(engine, pack)
    assert [e["subject"] for e in events(client, "episode.removed")] == [added["subject"]]
    outcomes = client.get("/metrics/outcomes", headers=API)
    assert outcomes.status_code == 200, outcomes.text

    delete(client, "Patient/p1")
    refresh_episodes(engine, pack)
    assert [e["subject"] for e in events(client, "person.removed")] == [person]
    assert client.get(f"/people/{person}/episodes", headers=API).status_code == 404
    assert client.get("/status", headers=API).json()["people"] == 0


def test_a_deleted_condition_no_longer_gives_its_encounter_a_concern(client: TestClient) -> None:
    put(client, patient("p1"))
    put(
        client,
        {
            "resourceType": "Condition",
            "id": "c1",
            "subject": {"reference": "Patient/p1"},
            "code": {"coding": [{"system": ICD, "code": "M17.11"}]},
        },
    )
    put(client, encounter("e1", "p1", reasonReference=[{"reference": "Condition/c1"}]))
    person = client.get("/people", headers=API).json()["items"][0]["id"]

    def concerns() -> list[str]:
        items = client.get(f"/people/{person}/journey", headers=API).json()["items"]
        return [code for record in items for code in record["concern_codes"]]

    assert any("M17" in code for code in concerns())
    delete(client, "Condition/c1")
    assert not any("M17" in code for code in concerns())
