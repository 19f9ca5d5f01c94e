"""The journey API contract: auth, problem JSON, paging, filters, merged people."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from integration.api.app import create_app
from integration.cli.demo_population import PAYER, PROVIDER, write_sample
from integration.config import Settings
from integration.journey.rule_packs import set_store_pack
from mappings.rulepack import DEFAULT_PACK, RulePack, load_rule_pack
from tests.conftest import MAIDEN, MARRIED, SSN, ImportFn, encounter, patient, person, write_ndjson

KEY = "test-key"
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture
def client(engine: Engine) -> Iterator[TestClient]:
    settings = Settings(api_keys=[KEY, "second-key"], database_url=str(engine.url), page_size=7)
    with TestClient(create_app(settings, engine)) as test_client:
        yield test_client


@pytest.fixture
def sample(tmp_path: Path, import_files: ImportFn) -> None:
    paths = write_sample(tmp_path / "data", people=20)
    import_files(paths[PROVIDER], source=PROVIDER)
    import_files(paths[PAYER], source=PAYER)


def assert_problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == status
    assert body["title"]
    assert body["detail"]
    return body


def test_healthz_needs_no_key(client: TestClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok"}


@pytest.mark.parametrize("path", ["/people", "/people/x", "/people/x/journey", "/status"])
def test_missing_key_is_401_problem_with_a_challenge(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert_problem(response, 401)
    assert response.headers["www-authenticate"].startswith("Bearer")


def test_wrong_key_is_401(client: TestClient) -> None:
    body = assert_problem(client.get("/people", headers={"Authorization": "Bearer nope"}), 401)
    assert body["detail"] == "the API key is not valid"


def test_any_configured_key_works(client: TestClient) -> None:
    assert client.get("/people", headers={"Authorization": "Bearer second-key"}).status_code == 200


def test_server_without_keys_says_so(engine: Engine) -> None:
    with TestClient(create_app(Settings(api_keys=[]), engine)) as bare:
        body = assert_problem(bare.get("/people", headers=AUTH), 401)
    assert "no API keys configured" in body["detail"]


def test_people_pages_walk_everyone_once(client: TestClient, sample: None) -> None:
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params = {"cursor": cursor} if cursor else {}
        body = client.get("/people", headers=AUTH, params=params).json()
        seen.extend(p["id"] for p in body["items"])
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 20
    assert pages == 3  # page size 7
    assert seen == sorted(seen)


def test_people_filter_by_identifier(
    client: TestClient, import_files: ImportFn, tmp_path: Path
) -> None:
    import_files(
        write_ndjson(
            tmp_path / "a.ndjson",
            patient("a", identifier=[{"system": SSN, "value": "999-1"}]),
            patient("b"),
        )
    )
    body = client.get("/people", headers=AUTH, params={"identifier": f"{SSN}|999-1"}).json()
    assert [s["patient_id"] for p in body["items"] for s in p["sources"]] == ["a"]
    assert (
        client.get("/people", headers=AUTH, params={"identifier": f"{SSN}|nobody"}).json()["items"]
        == []
    )


@pytest.mark.parametrize("bad", ["no-bar", "|value", "system|"])
def test_malformed_identifier_filter_is_400(client: TestClient, bad: str) -> None:
    assert_problem(client.get("/people", headers=AUTH, params={"identifier": bad}), 400)


def test_person_shows_sources_identifiers_and_counts(
    client: TestClient, import_files: ImportFn, tmp_path: Path
) -> None:
    shared = [{"system": SSN, "value": "999-2"}]
    import_files(
        write_ndjson(
            tmp_path / "a.ndjson",
            patient("a", identifier=shared, birthDate="1970-01-01"),
            encounter("e1", "a", klass="EMER"),
        ),
        source="clinic",
    )
    import_files(
        write_ndjson(
            tmp_path / "b.ndjson",
            patient("b", identifier=shared, birthDate="1970-01-01"),
            encounter("e2", "b", klass="IMP"),
        ),
        source="plan",
    )
    [person] = client.get("/people", headers=AUTH).json()["items"]
    body = client.get(f"/people/{person['id']}", headers=AUTH).json()
    assert body["name"] == "Pat Test"
    assert [s["source"] for s in body["sources"]] == ["clinic", "plan"]
    assert body["identifiers"] == [
        {"system": SSN, "value": "999-2", "source": "clinic"},
        {"system": SSN, "value": "999-2", "source": "plan"},
    ]
    assert body["record_counts"] == {"diagnose": 1, "treat": 1}


def test_unknown_person_is_404_problem(client: TestClient) -> None:
    assert_problem(client.get("/people/nobody", headers=AUTH), 404)
    assert_problem(client.get("/people/nobody/journey", headers=AUTH), 404)


def journey_fixture(client: TestClient, import_files: ImportFn, tmp_path: Path) -> str:
    import_files(
        write_ndjson(
            tmp_path / "j.ndjson",
            patient("p"),
            encounter("e-emer", "p", klass="EMER", start="2025-01-05T10:00:00Z"),
            encounter("e-imp", "p", klass="IMP", start="2025-01-06T10:00:00Z"),
            encounter("e-hh", "p", klass="HH", start="2025-03-01T10:00:00Z"),
            encounter("e-vr", "p", klass="VR", start="2025-06-30T23:00:00Z"),
            encounter("e-amb", "p", klass="AMB", start="2025-07-01T00:00:00Z"),
        )
    )
    [person] = client.get("/people", headers=AUTH).json()["items"]
    return str(person["id"])


def ids(body: dict[str, Any]) -> list[str]:
    return [r["source"]["resource_id"] for r in body["items"]]


def test_journey_is_in_time_order_with_reasons(
    client: TestClient, import_files: ImportFn, tmp_path: Path
) -> None:
    person = journey_fixture(client, import_files, tmp_path)
    body = client.get(f"/people/{person}/journey", headers=AUTH).json()
    assert body["person_id"] == person
    assert ids(body) == ["e-emer", "e-imp", "e-hh", "e-vr", "e-amb"]
    first = body["items"][0]
    assert first["job"] == "diagnose"
    assert first["reason"]["rule_id"] == "encounter.reason.symptom-in-acute-care"
    assert first["reason"]["pack_version"] == load_rule_pack().label
    assert first["source"] == {
        "source": "test-source",
        "resource_type": "Encounter",
        "resource_id": "e-emer",
        "version": first["source"]["version"],
    }


def test_journey_filters_by_job_and_time(
    client: TestClient, import_files: ImportFn, tmp_path: Path
) -> None:
    person = journey_fixture(client, import_files, tmp_path)
    url = f"/people/{person}/journey"
    assert ids(client.get(url, headers=AUTH, params={"job": "keep_well"}).json()) == [
        "e-hh",
        "e-vr",
    ]
    assert ids(
        client.get(url, headers=AUTH, params=[("job", "treat"), ("job", "diagnose")]).json()
    ) == ["e-emer", "e-imp", "e-amb"]
    # A date `to` includes its whole day; a dateTime is exact.
    assert ids(
        client.get(url, headers=AUTH, params={"from": "2025-01-06", "to": "2025-06-30"}).json()
    ) == ["e-imp", "e-hh", "e-vr"]
    assert ids(
        client.get(url, headers=AUTH, params={"from": "2025-06-30T23:30:00+00:00"}).json()
    ) == ["e-amb"]


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"job": "cure"}, "job"),
        ({"from": "yesterday"}, "from"),
        ({"to": "2025-01-01T10:00:00"}, "to"),
        ({"limit": "0"}, "limit"),
    ],
)
def test_bad_journey_parameters_are_400_naming_the_parameter(
    client: TestClient, import_files: ImportFn, tmp_path: Path, params: dict[str, str], name: str
) -> None:
    person = journey_fixture(client, import_files, tmp_path)
    body = assert_problem(client.get(f"/people/{person}/journey", headers=AUTH, params=params), 400)
    assert name in body["detail"]


def test_journey_cursor_paging(client: TestClient, import_files: ImportFn, tmp_path: Path) -> None:
    person = journey_fixture(client, import_files, tmp_path)
    url = f"/people/{person}/journey"
    first = client.get(url, headers=AUTH, params={"limit": 2}).json()
    second = client.get(
        url, headers=AUTH, params={"limit": 2, "cursor": first["next_cursor"]}
    ).json()
    third = client.get(
        url, headers=AUTH, params={"limit": 2, "cursor": second["next_cursor"]}
    ).json()
    assert ids(first) + ids(second) + ids(third) == ["e-emer", "e-imp", "e-hh", "e-vr", "e-amb"]
    assert third["next_cursor"] is None


@pytest.mark.parametrize("cursor", ["garbage!", "WyJhIl0", "e30"])
def test_forged_cursor_is_400(
    client: TestClient, import_files: ImportFn, tmp_path: Path, cursor: str
) -> None:
    person = journey_fixture(client, import_files, tmp_path)
    assert_problem(
        client.get(f"/people/{person}/journey", headers=AUTH, params={"cursor": cursor}), 400
    )


def test_merged_person_id_answers_with_the_survivor(
    client: TestClient, import_files: ImportFn, tmp_path: Path
) -> None:
    import_files(
        write_ndjson(tmp_path / "a.ndjson", person("a", ssn="123-45-0001", name=MAIDEN)),
        source="s1",
    )
    import_files(
        write_ndjson(tmp_path / "b.ndjson", person("b", mbi="1EG4-TE5-MK72", name=MARRIED)),
        source="s2",
    )
    old_ids = sorted(p["id"] for p in client.get("/people", headers=AUTH).json()["items"])
    bridge = person("c", ssn="123-45-0001", mbi="1EG4-TE5-MK72", name=MAIDEN)
    import_files(write_ndjson(tmp_path / "c.ndjson", bridge), source="s3")
    body = client.get(f"/people/{old_ids[1]}", headers=AUTH).json()
    assert body["id"] == old_ids[0]


def test_status_counts_the_store(client: TestClient, sample: None) -> None:
    body = client.get("/status", headers=AUTH).json()
    assert body["people"] == 20
    assert body["quarantine_open"] == 0
    assert body["pending_derivation"] == 0
    assert set(body["records_by_job"]) >= {"diagnose", "treat", "keep_well"}


def test_openapi_documents_the_endpoints(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert {
        "/people",
        "/people/{person_id}",
        "/people/{person_id}/journey",
        "/healthz",
        "/status",
    } <= set(spec["paths"])
    assert client.get("/docs").status_code == 200


def test_each_request_is_logged_without_its_query_string(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    from integration.api.request_log import install_request_log

    app = create_app(Settings(api_keys=[KEY]), engine)
    install_request_log(app)
    with caplog.at_level(logging.INFO, logger="journey.api"), TestClient(app) as logged:
        assert logged.get("/people?name=Zelda", headers=AUTH).status_code == 200
        assert logged.get("/people/nobody", headers=AUTH).status_code == 404
    lines = [record.getMessage() for record in caplog.records if record.name == "journey.api"]
    assert [line.rsplit(" ", 1)[0] for line in lines] == [
        "GET /people 200",
        "GET /people/nobody 404",
    ]
    assert "Zelda" not in caplog.text


def test_pushes_and_api_started_syncs_map_with_the_stores_pack(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pack_file = tmp_path / "pack.toml"
    pack_file.write_text(
        DEFAULT_PACK.read_text().replace(
            f'version = "{load_rule_pack().version}"', 'version = "9.9.9"'
        )
    )
    set_store_pack(engine, pack_file)
    synced_with: list[RulePack] = []

    async def recorded_sync(_engine: Engine, pack: RulePack, *_args: Any, **_kwargs: Any) -> None:
        synced_with.append(pack)

    monkeypatch.setattr("integration.api.routes.sources.sync_source", recorded_sync)
    source = {"name": "ehr", "kind": "provider", "base_url": "http://127.0.0.1:9", "mode": "rest"}
    settings = Settings(api_keys=[KEY], sources=[source])
    with TestClient(create_app(settings, engine)) as client:
        for _ in range(2):
            assert client.post("/sources/ehr/sync", headers=AUTH).status_code == 202
            deadline = time.monotonic() + 10
            while client.app.state.running_syncs:  # type: ignore[attr-defined]
                assert time.monotonic() < deadline, "background sync did not finish"
                time.sleep(0.01)
        push_pack = client.app.state.push.pack  # type: ignore[attr-defined]
    assert push_pack.label == "default 9.9.9"
    assert len(synced_with) == 2
    assert all(pack is push_pack for pack in synced_with)


def test_a_running_api_maps_its_next_push_with_a_pack_another_process_set(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PACK_TEST_PUSH_KEY", "push-key-0123456789")
    settings = Settings(
        api_keys=[KEY], push_clients=[{"source": "clinic", "key_env": "PACK_TEST_PUSH_KEY"}]
    )
    push = {"Authorization": "Bearer push-key-0123456789", "Content-Type": "application/fhir+json"}
    with TestClient(create_app(settings, engine)) as client:
        held = client.app.state.push.pack  # type: ignore[attr-defined]
        pack_file = tmp_path / "pack.toml"
        bumped = f'version = "{held.version}"'
        pack_file.write_text(DEFAULT_PACK.read_text().replace(bumped, 'version = "9.9.8"'))
        set_store_pack(engine, pack_file)  # as `journey remap --pack` in another process
        for resource in (patient("p"), encounter("e", "p")):
            url = f"/fhir/{resource['resourceType']}/{resource['id']}"
            assert client.put(url, json=resource, headers=push).status_code in (200, 201)
        [person] = client.get("/people", headers=AUTH).json()["items"]
        items = client.get(f"/people/{person['id']}/journey", headers=AUTH).json()["items"]
    assert [item["reason"]["pack_version"] for item in items] == ["default 9.9.8"]
