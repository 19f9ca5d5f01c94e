"""The audit trail: every read and write of patient data, by the API, /fhir, the feed's
deliveries and `journey show`, kept as IHE BALP AuditEvents an auditor can search,
refused requests included; nobody else may read it."""

from __future__ import annotations

import base64
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from fhir.resources.R4B.auditevent import AuditEvent
from sqlalchemy import Engine

from integration.api.app import create_app
from integration.config import Settings
from integration.store.queries import list_people
from tests.conftest import ImportFn, encounter, patient, write_ndjson
from tests.servers import JOURNEY
from tests.webhook_receiver import Receiver, delivering, quick_settings, subscribe

ADMIN = "audit-admin-key"
READER = "reader-key"
PUSH = "audit-push-key"


@pytest.fixture
def client(engine: Engine, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[TestClient]:
    monkeypatch.setenv("AUDIT_READER_KEY", READER)
    monkeypatch.setenv("AUDIT_PUSH_KEY", PUSH)
    settings = Settings(
        api_keys=[ADMIN],
        database_url=str(engine.url),
        clients=[
            {"id": "navigator", "scopes": ["journey/people.read"], "key_env": "AUDIT_READER_KEY"}
        ],
        push_clients=[{"source": "riverside", "key_env": "AUDIT_PUSH_KEY"}],
    )
    with TestClient(create_app(settings, engine)) as test_client:
        yield test_client


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def audit(client: TestClient, **params: Any) -> list[dict[str, Any]]:
    answer = client.get("/fhir/AuditEvent", headers=bearer(ADMIN), params=params)
    assert answer.status_code == 200, answer.text
    events = [entry["resource"] for entry in answer.json()["entry"]]
    for event in events:
        AuditEvent.model_validate(event)
    return events


def asked(event: dict[str, Any]) -> str:
    query = next(e for e in event["entity"] if e["role"]["code"] == "24")
    return base64.b64decode(query["query"]).decode()


def who(event: dict[str, Any]) -> str:
    return str(event["agent"][0]["who"]["identifier"]["value"])


def someone(client: TestClient, tmp_path: Path, import_files: ImportFn) -> str:
    import_files(write_ndjson(tmp_path / "a.ndjson", patient("p1"), encounter("e1", "p1")))
    [person] = client.get("/people", headers=bearer(ADMIN)).json()["items"]
    return str(person["id"])


def test_a_journey_read_is_audited_with_who_whom_what_and_how(
    client: TestClient, tmp_path: Path, import_files: ImportFn
) -> None:
    person = someone(client, tmp_path, import_files)
    assert (
        client.get(f"/people/{person}/journey?job=diagnose", headers=bearer(READER)).status_code
        == 200
    )
    [event] = audit(client, patient=person)
    assert event["action"] == "R"
    assert event["outcome"] == "0"
    assert event["meta"]["profile"] == [
        "https://profiles.ihe.net/ITI/BALP/StructureDefinition/IHE.BasicAudit.PatientRead"
    ]
    assert who(event) == "api-key:navigator"
    assert event["agent"][0]["network"]["address"]
    assert {"reference": f"Patient/{person}"} in [e.get("what") for e in event["entity"]]
    assert asked(event) == f"/people/{person}/journey?job=diagnose"


def test_refused_and_failed_requests_are_audited_too(
    client: TestClient, tmp_path: Path, import_files: ImportFn
) -> None:
    person = someone(client, tmp_path, import_files)
    assert client.get(f"/people/{person}", headers=bearer("wrong-key")).status_code == 401
    assert client.get("/feed", headers=bearer(READER)).status_code == 403
    assert client.get("/people/nobody", headers=bearer(READER)).status_code == 404
    events = audit(client)
    by_path = {asked(e): e for e in events}
    assert by_path[f"/people/{person}"]["outcome"] == "4"
    assert who(by_path[f"/people/{person}"]) == "anonymous"
    assert by_path["/feed"]["outcomeDesc"] == "HTTP 403"
    assert who(by_path["/feed"]) == "api-key:navigator"
    assert by_path["/people/nobody"]["outcomeDesc"] == "HTTP 404"


def test_pushes_and_fhir_reads_are_audited_under_their_source(client: TestClient) -> None:
    headers = {**bearer(PUSH), "Content-Type": "application/fhir+json"}
    assert client.put("/fhir/Patient/p9", json=patient("p9"), headers=headers).status_code == 201
    assert client.get("/fhir/Patient/p9", headers=bearer(PUSH)).status_code == 200
    events = audit(client)
    actions = {(e["action"], asked(e)) for e in events if who(e) == "push:riverside"}
    assert ("U", "/fhir/Patient/p9") in actions
    assert ("R", "/fhir/Patient/p9") in actions
    assert all(asked(e) != "/fhir/metadata" for e in events)


def test_the_audit_trail_is_for_auditors_only_and_searchable_by_date(client: TestClient) -> None:
    denied = client.get("/fhir/AuditEvent", headers=bearer(READER))
    assert denied.status_code == 403
    assert denied.json()["resourceType"] == "OperationOutcome"
    assert audit(client, date="ge2000-01-01")
    assert audit(client, date="lt2000-01-01") == []
    bad = client.get("/fhir/AuditEvent", headers=bearer(ADMIN), params={"date": "yesterday"})
    assert bad.status_code == 400
    assert bad.json()["issue"][0]["expression"] == ["date"]


def test_feed_deliveries_are_audited_per_person_sent(
    engine: Engine, tmp_path: Path, import_files: ImportFn, receiver: Receiver
) -> None:
    settings = quick_settings(engine)
    with TestClient(create_app(settings, engine)) as client:
        sub = subscribe(client, receiver, "app", types=["record.added"])
        import_files(write_ndjson(tmp_path / "a.ndjson", patient("p1"), encounter("e1", "p1")))
        with delivering(engine, settings):
            receiver.wait_for(lambda: len(receiver.ids("app")) == 1)
        events = client.get("/fhir/AuditEvent", headers=bearer("test-key")).json()["entry"]
    sent = [e["resource"] for e in events if who(e["resource"]) == f"subscription:{sub}"]
    [event] = sent
    assert event["action"] == "E"
    assert event["subtype"][0]["code"] == "110106"
    assert any(
        e.get("what", {}).get("reference", "").startswith("Patient/") for e in event["entity"]
    )


def test_journey_show_and_journey_audit_in_the_terminal(
    store_url: str, tmp_path: Path, import_files: ImportFn, engine: Engine
) -> None:
    import_files(write_ndjson(tmp_path / "a.ndjson", patient("p1"), encounter("e1", "p1")))
    env = {**os.environ, "JOURNEY_DATABASE_URL": store_url, "COLUMNS": "200"}
    with engine.connect() as conn:
        person = list_people(conn, 1, None, None)[0]["id"]
    shown = subprocess.run(
        [JOURNEY, "show", person],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert shown.returncode == 0, shown.stderr
    listed = subprocess.run(
        [JOURNEY, "audit", "--patient", person, "--json"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert listed.returncode == 0, listed.stderr
    [row] = orjson.loads(listed.stdout)
    assert row["client"].startswith("cli:")
    assert row["path"] == "journey show"
    bad = subprocess.run(
        [JOURNEY, "audit", "--since", "soon"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert bad.returncode == 1
    assert "--since must be a date" in bad.stderr


def test_an_unsupported_method_is_answered_405_and_audited(client: TestClient) -> None:
    answer = client.request("TRACE", "/people", headers=bearer(ADMIN))
    assert answer.status_code == 405
    [event] = [e for e in audit(client) if asked(e) == "/people"]
    assert event["action"] == "E"
    assert event["outcomeDesc"] == "HTTP 405"


def test_odd_requests_never_stop_the_audit_trail(client: TestClient) -> None:
    """Values PostgreSQL would refuse (NUL, over-long ids and methods) are made to fit,
    so the rows after them are written: no request, anonymous or not, turns it off."""
    client.get("/people/" + "x" * 300)
    client.get("/people/%00", headers=bearer(ADMIN))
    client.request("PROPFINDXYZZY", "/people", headers=bearer(ADMIN))
    client.get("/feed", params={"person": "y" * 500}, headers=bearer(ADMIN))
    for _ in range(3):
        assert client.get("/people", headers=bearer(ADMIN)).status_code == 200
    events = audit(client, _count=50)
    assert len(events) == 7  # every request, the odd ones and those after them
    assert [asked(e) for e in events[:3]] == ["/people"] * 3
    long_one = next(e for e in events if asked(e).startswith("/people/xxx"))
    assert long_one["entity"][0]["what"]["reference"].endswith("\u2026")
