"""Purge: data that must not be kept leaves the store, not only the journey. Through the
API (administrators only) and `journey purge`, on both backends: every stored version
of the resource and what was derived from it go, the journey follows as for a
deletion, and the purge itself is audited; what was never stored is a 404."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from integration.api.app import create_app
from integration.config import Settings
from integration.store.schema import audit_events, feed_events, job_records, raw_resources
from tests.conftest import ImportFn, encounter, patient, push_put, write_ndjson

ADMIN = "purge-admin-key"
READER = "purge-reader-key"
PUSH_KEY = "purge-push-key"
SOURCE = "riverside"
PUSH = {"Authorization": f"Bearer {PUSH_KEY}", "Content-Type": "application/fhir+json"}
JOURNEY = str(Path(sys.executable).parent / "journey")


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def client(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    monkeypatch.setenv("PURGE_PUSH_KEY", PUSH_KEY)
    monkeypatch.setenv("PURGE_READER_KEY", READER)
    settings = Settings(
        api_keys=[ADMIN],
        database_url=str(engine.url),
        clients=[
            {
                "id": "navigator",
                "scopes": ["journey/people.read", "journey/feed.read"],
                "key_env": "PURGE_READER_KEY",
            }
        ],
        push_clients=[{"source": SOURCE, "key_env": "PURGE_PUSH_KEY"}],
    )
    with TestClient(create_app(settings, engine)) as test_client:
        yield test_client


def put(client: TestClient, resource: dict[str, Any]) -> None:
    push_put(client, resource, PUSH)


def purge(client: TestClient, key: str = ADMIN, **body: Any) -> Any:
    return client.post("/purge", json=body, headers=bearer(key))


def versions_stored(engine: Engine, resource_id: str) -> list[str]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                select(raw_resources.c.content).where(raw_resources.c.resource_id == resource_id)
            ).scalars()
        )


def test_a_purged_encounter_leaves_the_store_and_the_journey(
    client: TestClient, engine: Engine
) -> None:
    put(client, patient("p1"))
    put(client, encounter("e1", "p1", klass="EMER"))
    put(client, encounter("e1", "p1", klass="EMER", status="in-progress"))  # two versions
    [person] = client.get("/people", headers=bearer(ADMIN)).json()["items"]
    with engine.connect() as conn:
        [record] = conn.execute(
            select(job_records.c.id).where(job_records.c.resource_id == "e1")
        ).scalars()

    answer = purge(
        client, source=SOURCE, resource_type="Encounter", resource_id="e1", reason="wrong patient"
    )

    assert answer.status_code == 200, answer.text
    assert answer.json() | {"feed_events_scrubbed": 0} == {
        "purged": f"{SOURCE}/Encounter/e1",
        "resources": 1,
        "versions": 2,
        "job_records": 1,
        "quarantine_entries": 0,
        "feed_events_scrubbed": 0,
        "journey_updated": True,
    }
    # Only the deletion mark is kept: content "{}", nothing the source sent.
    assert versions_stored(engine, "e1") == ["{}"]
    journey = client.get(
        f"/people/{person['id']}/journey", headers=bearer(ADMIN), params={"include_excluded": True}
    ).json()["items"]
    assert journey == []
    assert client.get("/fhir/Encounter/e1", headers=PUSH).status_code == 410
    with engine.connect() as conn:
        payloads = conn.execute(
            select(feed_events.c.payload).where(feed_events.c.subject == record)
        ).scalars()
        assert all(orjson.loads(p)["purged"] is True for p in payloads)
        [audited] = conn.execute(
            select(audit_events).where(audit_events.c.subtype == "purge")
        ).mappings()
    assert audited["action"] == "D"
    assert audited["path"] == f"{SOURCE}/Encounter/e1"
    assert audited["person_id"] == person["id"]
    assert audited["client"].startswith("api-key:key-")


def test_a_purged_patient_leaves_its_person_who_is_retired(
    client: TestClient, engine: Engine
) -> None:
    put(client, patient("p1"))
    [person] = client.get("/people", headers=bearer(ADMIN)).json()["items"]
    answer = purge(client, source=SOURCE, resource_type="Patient", resource_id="p1")
    assert answer.status_code == 200, answer.text
    assert client.get("/people", headers=bearer(ADMIN)).json()["items"] == []
    assert client.get(f"/people/{person['id']}", headers=bearer(ADMIN)).status_code == 404
    assert versions_stored(engine, "p1") == ["{}"]


def test_a_patient_purged_with_their_data_takes_their_encounters_along(
    client: TestClient, engine: Engine
) -> None:
    put(client, patient("p1"))
    put(client, encounter("e1", "p1"))
    put(client, patient("p2"))
    put(client, encounter("e2", "p2"))
    answer = purge(
        client, source=SOURCE, resource_type="Patient", resource_id="p1", with_their_data=True
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["resources"] == 2
    assert versions_stored(engine, "p1") == ["{}"]
    assert versions_stored(engine, "e1") == ["{}"]
    assert len(versions_stored(engine, "e2")) == 1, "another patient's data stays"
    with engine.connect() as conn:
        held = conn.execute(select(job_records.c.resource_id)).scalars().all()
    assert "e1" not in held
    assert "e2" in held


def test_with_their_data_is_only_for_a_patient(client: TestClient, engine: Engine) -> None:
    put(client, patient("p1"))
    put(client, encounter("e1", "p1"))
    answer = purge(
        client, source=SOURCE, resource_type="Encounter", resource_id="e1", with_their_data=True
    )
    assert answer.status_code == 400
    assert "with_their_data" in answer.json()["detail"]
    assert len(versions_stored(engine, "e1")) == 1, "nothing purged"


def test_a_quarantined_resource_can_be_purged_too(
    client: TestClient, import_files: ImportFn, tmp_path: Path
) -> None:
    bad = {"resourceType": "Encounter", "id": "e9", "status": "not-a-status", "class": {}}
    import_files(write_ndjson(tmp_path / "bad.ndjson", bad), source=SOURCE)
    assert client.get("/quarantine", headers=bearer(ADMIN)).json()["items"]
    answer = purge(client, source=SOURCE, resource_type="Encounter", resource_id="e9")
    assert answer.status_code == 200, answer.text
    assert answer.json()["quarantine_entries"] >= 1
    listed = client.get("/quarantine", headers=bearer(ADMIN), params={"closed": True}).json()
    assert [e for e in listed["items"] if e["resource_id"] == "e9"] == []


def test_nothing_stored_is_a_404_and_nothing_is_audited_as_purged(
    client: TestClient, engine: Engine
) -> None:
    answer = purge(client, source=SOURCE, resource_type="Encounter", resource_id="never")
    assert answer.status_code == 404
    assert "riverside/Encounter/never" in answer.json()["detail"]
    with engine.connect() as conn:
        assert (
            conn.execute(select(audit_events).where(audit_events.c.subtype == "purge")).first()
            is None
        )


def test_only_administrators_may_purge(client: TestClient, engine: Engine) -> None:
    put(client, patient("p1"))
    answer = purge(client, READER, source=SOURCE, resource_type="Patient", resource_id="p1")
    assert answer.status_code == 403
    assert "journey/data.purge" in answer.json()["detail"]
    assert len(versions_stored(engine, "p1")) == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"source": SOURCE, "resource_type": "encounter", "resource_id": "e1"}, "resource_type"),
        ({"source": SOURCE, "resource_type": "Encounter", "resource_id": "e 1/.."}, "resource_id"),
        ({"source": "no such/source", "resource_type": "Encounter", "resource_id": "e1"}, "source"),
        ({"source": SOURCE, "resource_type": "Encounter"}, "resource_id"),
    ],
)
def test_a_bad_request_names_the_field(
    client: TestClient, body: dict[str, str], field: str
) -> None:
    answer = client.post("/purge", json=body, headers=bearer(ADMIN))
    assert answer.status_code in (400, 422)
    assert field in answer.text


def journey_cli(engine: Engine, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "JOURNEY_DATABASE_URL": engine.url.render_as_string(hide_password=False)}
    env.pop("JOURNEY_API_KEYS", None)
    return subprocess.run(
        [JOURNEY, *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


def test_journey_purge_asks_for_yes_and_says_what_it_removed(
    engine: Engine, tmp_path: Path
) -> None:
    path = write_ndjson(tmp_path / "a.ndjson", patient("p1"), encounter("e1", "p1"))
    assert journey_cli(engine, tmp_path, "import", "--source", SOURCE, str(path)).returncode == 0
    where = ["--source", SOURCE, "--type", "Encounter", "--id", "e1"]

    unconfirmed = journey_cli(engine, tmp_path, "purge", *where)
    assert unconfirmed.returncode == 1
    assert "--yes" in unconfirmed.stderr
    assert len(versions_stored(engine, "e1")) == 1

    done = journey_cli(engine, tmp_path, "purge", *where, "--yes", "--json")
    assert done.returncode == 0, done.stderr
    assert orjson.loads(done.stdout)["versions"] == 1
    assert versions_stored(engine, "e1") == ["{}"]
    audit = journey_cli(engine, tmp_path, "audit", "--json")
    assert any(row["subtype"] == "purge" for row in orjson.loads(audit.stdout))

    only_patients = journey_cli(engine, tmp_path, "purge", *where, "--with-their-data", "--yes")
    assert only_patients.returncode == 1
    assert "--with-their-data: only for a Patient" in only_patients.stderr

    unknown = journey_cli(
        engine, tmp_path, "purge", "--source", SOURCE, "--type", "Encounter", "--id", "zz", "--yes"
    )
    assert unknown.returncode == 1
    assert "nothing stored for riverside/Encounter/zz" in unknown.stderr
