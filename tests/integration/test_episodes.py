"""Episodes and outcomes end to end: imported records become a person's episodes at
the API, in the journey, as FHIR EpisodeOfCare (valid R4) and in `journey show`; the
cohort measures follow what the store holds, as JSON, CSV and `journey outcomes`."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.episodeofcare import EpisodeOfCare
from sqlalchemy import Engine

from integration.api.app import create_app
from integration.config import Settings
from integration.store import queries
from integration.store.episodes import stale_count
from tests.conftest import ImportFn, encounter, patient, write_ndjson
from tests.mappings.test_questionnaire_safety import phq9

KEY = "test-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
ICD = "http://hl7.org/fhir/sid/icd-10-cm"


def reason(code: str) -> list[dict[str, Any]]:
    return [{"coding": [{"system": ICD, "code": code}]}]


def spread(total: int) -> list[int]:
    """PHQ-9 item answers adding up to `total`, item 9 (self-harm) left at 0."""
    items = [0] * 9
    for i in range(total):
        items[i % 8] += 1
    return items


@pytest.fixture
def client(engine: Engine) -> Iterator[TestClient]:
    settings = Settings(api_keys=[KEY], database_url=str(engine.url))
    with TestClient(create_app(settings, engine)) as test_client:
        yield test_client


@pytest.fixture
def person_id(tmp_path: Path, engine: Engine, import_files: ImportFn) -> str:
    """Depression diagnosed, treated and screened from 18 down to 8; hypertension on
    the side; a check-up that names no concern."""
    resources = [
        patient("p1"),
        encounter("dx", "p1", start="2025-01-10T09:00:00Z", reasonCode=reason("F32.1")),
        phq9("before", spread(18), authored="2025-01-10T09:30:00Z"),
        encounter("htn", "p1", start="2025-02-01T09:00:00Z", reasonCode=reason("I10")),
        encounter("check", "p1", start="2025-02-20T09:00:00Z", reasonCode=reason("Z00.00")),
        phq9("after", spread(8), authored="2025-05-10T09:30:00Z"),
    ]
    import_files(write_ndjson(tmp_path / "p1.ndjson", *resources), source="clinic")
    with engine.connect() as conn:
        [person] = queries.list_people(conn, 10)
    return str(person["id"])


def by_concern(episodes: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {e["concern"]["id"]: e for e in episodes}


def record_ids(episode: dict[str, Any]) -> set[str]:
    return {r["id"] for r in episode["records"]}


def test_a_persons_episodes_group_records_by_concern(client: TestClient, person_id: str) -> None:
    body = client.get(f"/people/{person_id}/episodes", headers=AUTH).json()
    episodes = by_concern(body["items"])
    assert set(episodes) == {"depression", "icd10cm:I10", "general"}
    journey = client.get(f"/people/{person_id}/journey", headers=AUTH).json()["items"]
    ids = {item["source"]["resource_id"]: item["id"] for item in journey}
    assert record_ids(episodes["depression"]) == {ids["dx"], ids["before"], ids["after"]}
    assert record_ids(episodes["icd10cm:I10"]) == {ids["htn"]}
    assert record_ids(episodes["general"]) == {ids["check"]}
    [phq] = episodes["depression"]["outcomes"]
    assert (phq["instrument"], phq["baseline"]["value"], phq["latest"]["value"]) == ("phq9", 18, 8)
    assert phq["reliable_improvement"] is True
    assert phq["recovery"] is True
    assert phq["records"] == [ids["before"], ids["after"]]
    assert episodes["depression"]["sources"] == ["clinic"]
    # As of two years on, a year without contact has closed them all.
    later = client.get(
        f"/people/{person_id}/episodes", headers=AUTH, params={"as_of": "2027-06-01"}
    ).json()
    statuses = {e["concern"]["id"]: e["status"] for e in later["items"]}
    # Depression recovered (its job got done); hypertension was left without follow-up.
    assert statuses == {
        "depression": "resolved",
        "icd10cm:I10": "lost_to_follow_up",
        "general": "resolved",
    }


def test_the_journey_embeds_episodes_when_asked(client: TestClient, person_id: str) -> None:
    plain = client.get(f"/people/{person_id}/journey", headers=AUTH).json()
    assert "episodes" not in plain
    asked = client.get(
        f"/people/{person_id}/journey", headers=AUTH, params={"episodes": "true"}
    ).json()
    assert {e["concern"]["id"] for e in asked["episodes"]} == {
        "depression",
        "icd10cm:I10",
        "general",
    }


def test_episodes_of_an_unknown_person_or_a_bad_date_are_problems(
    client: TestClient, person_id: str
) -> None:
    assert client.get("/people/nobody/episodes", headers=AUTH).status_code == 404
    bad = client.get(f"/people/{person_id}/episodes", headers=AUTH, params={"as_of": "June"})
    assert bad.status_code == 400
    assert bad.json()["invalid_params"][0]["name"] == "as_of"


def test_episode_of_care_is_valid_r4(client: TestClient, person_id: str) -> None:
    response = client.get("/fhir/EpisodeOfCare", headers=AUTH, params={"patient": person_id})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/fhir+json")
    bundle = response.json()
    Bundle.model_validate(bundle)
    resources = [EpisodeOfCare.model_validate(e["resource"]) for e in bundle["entry"]]
    assert bundle["total"] == len(resources) == 3
    assert {r.patient.reference for r in resources} == {f"Patient/{person_id}"}
    hypertension = next(
        r for r in resources if any(c.code == "I10" for t in r.type for c in t.coding)
    )
    # Last seen in February 2025: a year without contact has closed it.
    assert hypertension.status == "finished"
    same = client.get(
        "/fhir/EpisodeOfCare", headers=AUTH, params={"patient": f"Patient/{person_id}"}
    ).json()
    assert same["total"] == 3


def test_episode_of_care_errors_are_operation_outcomes(client: TestClient, person_id: str) -> None:
    missing_key = client.get("/fhir/EpisodeOfCare", params={"patient": person_id})
    assert missing_key.status_code == 401
    assert missing_key.json()["resourceType"] == "OperationOutcome"
    bad_id = client.get("/fhir/EpisodeOfCare", headers=AUTH, params={"patient": "a b"})
    assert bad_id.status_code == 400
    assert bad_id.json()["resourceType"] == "OperationOutcome"
    no_param = client.get("/fhir/EpisodeOfCare", headers=AUTH)
    assert no_param.status_code == 400
    unknown = client.get("/fhir/EpisodeOfCare", headers=AUTH, params={"patient": "nobody"}).json()
    assert unknown["total"] == 0
    assert unknown["entry"] == []


def measures(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {m["id"]: m for m in report["measures"]}


def settled(client: TestClient, **params: Any) -> dict[str, Any]:
    """The outcome report once journey serve's background upkeep has caught up."""
    deadline = time.monotonic() + 20
    while True:
        report: dict[str, Any] = client.get("/metrics/outcomes", headers=AUTH, params=params).json()
        if report["people_pending"] == 0:
            return report
        assert time.monotonic() < deadline, report
        time.sleep(0.2)


def test_cohort_measures_come_with_numerator_denominator_and_definition(
    client: TestClient, person_id: str, engine: Engine
) -> None:
    with engine.connect() as conn:
        assert stale_count(conn) == 1  # the import marked its person; serve catches up
    report = settled(client)
    assert report["episodes"] == 3
    assert report["people"] == 1
    assert report["people_pending"] == 0
    got = measures(report)
    assert (
        got["reliable_improvement"]["numerator"],
        got["reliable_improvement"]["denominator"],
    ) == (1, 1)
    assert got["recovery"]["value"] == 1.0
    assert all(m["definition"] for m in report["measures"])
    only = client.get("/metrics/outcomes", headers=AUTH, params={"concern": "icd10cm:I10"}).json()
    assert only["episodes"] == 1
    assert measures(only)["reliable_improvement"]["denominator"] == 0
    none = client.get("/metrics/outcomes", headers=AUTH, params={"from": "2026-01-01"}).json()
    assert none["episodes"] == 0
    csv = client.get("/metrics/outcomes", headers=AUTH, params={"format": "csv"})
    assert csv.headers["content-type"].startswith("text/csv")
    lines = csv.text.splitlines()
    assert lines[0] == "id,title,value,numerator,denominator,unit,definition"
    assert len(lines) == len(report["measures"]) + 1
    bad = client.get("/metrics/outcomes", headers=AUTH, params={"to": "soon"})
    assert bad.status_code == 400
    assert bad.headers["content-type"] == "application/problem+json"


def test_cohort_measures_follow_new_records(
    client: TestClient, person_id: str, tmp_path: Path, import_files: ImportFn
) -> None:
    # A relapse: a later screen back at 20 makes the latest score a deterioration.
    relapse = phq9("relapse", spread(20), authored="2025-08-01T09:30:00Z")
    settled(client)
    import_files(write_ndjson(tmp_path / "relapse.ndjson", relapse), source="clinic")
    got = measures(settled(client))
    assert got["reliable_improvement"]["numerator"] == 0
    assert got["recovery"]["numerator"] == 0


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_journey_outcomes_and_show_in_the_terminal(engine: Engine, person_id: str) -> None:
    env = {"JOURNEY_DATABASE_URL": str(engine.url), "PATH": str(Path(sys.executable).parent)}
    journey = str(Path(sys.executable).parent / "journey")

    def run(*args: str) -> str:
        done = subprocess.run(
            [journey, *args], capture_output=True, text=True, env={**env, "COLUMNS": "200"}
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    report = orjson.loads(run("outcomes", "--json", "--concern", "depression"))
    assert report["episodes"] == 1
    assert measures(report)["recovery"]["numerator"] == 1
    assert run("outcomes", "--csv").startswith("id,title,value,numerator")
    table = run("outcomes")
    assert "Episodes with reliable PROM improvement" in table
    shown = run("show", person_id)
    assert "Episodes" in shown
    assert "Depression" in shown
    assert "recovered" in shown
    bad = subprocess.run(
        [journey, "outcomes", "--from", "June"], capture_output=True, text=True, env=env
    )
    assert bad.returncode != 0
    assert "--from must be a date" in bad.stderr


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_a_person_whose_episodes_fail_is_left_out_not_everyone(
    engine: Engine,
    tmp_path: Path,
    import_files: ImportFn,
    pack: Any,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    import integration.journey.episodes as episodes_module
    from integration.journey.episodes import refresh_episodes
    from integration.store.episodes import mark_stale, stored_episodes

    resources = [
        patient("p1"),
        patient("p2", name=[{"family": "Other", "given": ["Ola"]}]),
        encounter("e1", "p1", reasonCode=reason("I10")),
        encounter("e2", "p2", reasonCode=reason("I10")),
    ]
    import_files(write_ndjson(tmp_path / "two.ndjson", *resources), source="clinic")
    with engine.connect() as conn:
        people = [p["id"] for p in queries.list_people(conn, 10)]
    real = episodes_module.build_episodes
    broken = people[0]

    def build(person: str, items: Any, rules: Any) -> Any:
        if person == broken:
            raise ValueError("a bug")
        return real(person, items, rules)

    monkeypatch.setattr(episodes_module, "build_episodes", build)
    with engine.begin() as conn:
        mark_stale(conn, people)
    assert refresh_episodes(engine, pack) == 2
    with engine.connect() as conn:
        kept = {person for person, _ in stored_episodes(conn)}
        assert stale_count(conn) == 0
    assert kept == {people[1]}
    assert f"episodes of person {broken} could not be built (ValueError)" in caplog.text


def test_pushed_records_reach_the_cohort_measures_in_the_background(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EPISODES_PUSH_KEY", "push-key")
    settings = Settings(
        api_keys=[KEY],
        database_url=str(engine.url),
        push_clients=[{"source": "riverside", "key_env": "EPISODES_PUSH_KEY"}],
    )
    push = {"Authorization": "Bearer push-key", "Content-Type": "application/fhir+json"}
    with TestClient(create_app(settings, engine)) as client:
        for resource in (
            patient("p9"),
            encounter("v9", "p9", reasonCode=reason("I10")),
        ):
            url = f"/fhir/{resource['resourceType']}/{resource['id']}"
            assert client.put(url, headers=push, json=resource).status_code in (200, 201)
        report = settled(client)
    assert report["episodes"] == 1
    assert report["people"] == 1
