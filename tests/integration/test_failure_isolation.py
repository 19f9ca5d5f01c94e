"""One resource can never stop mapping for everyone else, and a push never answers 500 for
data it stored. On both backends (the `engine` fixture)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select

import integration.journey.derivers.encounter as encounter_deriver
import integration.journey.derivers.questionnaire_response as response_deriver
from connectors.files import FileReader
from integration.api.app import create_app
from integration.config import Settings
from integration.ingest.pipeline import IngestPipeline, IngestSummary
from integration.journey.update import flag_all, pending_count, update_journey
from integration.push.bundle import PlannedWrite
from integration.push.service import FairLock, PushService
from integration.store import quarantine
from integration.store.queries import store_status
from integration.store.raw import IncomingResource, write_resources
from integration.store.schema import current_resources, job_records, person_links
from mappings.rulepack import RulePack
from tests.conftest import (
    ImportFn,
    database_away,
    encounter,
    patient,
    refuse_rows,
    write_ndjson,
)

PUSH_KEY = "clinic-push-key"
READ_KEY = "reader"


def records_by_resource(engine: Engine) -> dict[str, dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(select(job_records)).mappings().all()
    return {row["resource_id"]: dict(row) for row in rows}


def test_an_encounter_ending_in_9999_maps_like_any_other(
    tmp_path: Path, engine: Engine, import_files: ImportFn
) -> None:
    """It stopped mapping store-wide (an OverflowError in the date handling)."""
    path = write_ndjson(
        tmp_path / "a.ndjson",
        patient("p1"),
        encounter("e-forever", "p1", "IMP", period={"start": "2025-01-01", "end": "9999-12-31"}),
        encounter("e-normal", "p1", "EMER"),
    )
    summary = import_files(path)
    assert summary.derive.mapping_failures == 0
    records = records_by_resource(engine)
    assert records["e-forever"]["job"] == "treat"
    assert records["e-forever"]["occurred_end"] == "9999-12-31T23:59:59Z"
    assert records["e-normal"]["job"] == "diagnose"


def test_an_encounter_whose_mapping_raises_is_isolated_and_everyone_else_maps(
    tmp_path: Path,
    engine: Engine,
    pack: RulePack,
    import_files: ImportFn,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = encounter_deriver.map_encounter

    def fragile(resource: Any, *args: Any) -> Any:
        if resource["id"] == "e-bad":
            raise OverflowError("date value out of range")
        return real(resource, *args)

    monkeypatch.setattr(encounter_deriver, "map_encounter", fragile)
    path = write_ndjson(
        tmp_path / "a.ndjson",
        patient("p1"),
        patient("p2"),
        encounter("e-bad", "p1", "EMER"),
        encounter("e-good", "p1", "EMER"),
        encounter("e-other-person", "p2", "IMP"),
    )
    summary = import_files(path)
    assert summary.derive.mapping_failures == 1
    records = records_by_resource(engine)
    assert records["e-good"]["job"] == "diagnose"
    assert records["e-other-person"]["job"] == "treat"
    failed = records["e-bad"]
    assert failed["job"] == "unclassified"
    assert failed["rule_id"] == "mapping-failed"
    assert failed["subject_id"] == "p1"  # still in its patient's journey, explained
    assert "OverflowError at test_failure_isolation.py" in failed["reason"]
    assert "out of range" not in failed["reason"]  # the message could quote a value
    assert pending_count(engine) == 0
    with engine.connect() as conn:
        [entry] = quarantine.entries(conn, 10, stage="mapping")
        status = store_status(conn)
    assert (entry["resource_type"], entry["resource_id"]) == ("Encounter", "e-bad")
    assert status["mapping_failures_open"] == 1
    assert status["quarantine_open"] == 1

    # The cause fixed, a remap maps it and closes the entry by itself.
    monkeypatch.setattr(encounter_deriver, "map_encounter", real)
    flag_all(engine)
    assert update_journey(engine, pack).mapping_failures == 0
    assert records_by_resource(engine)["e-bad"]["job"] == "diagnose"
    with engine.connect() as conn:
        assert quarantine.entries(conn, 10) == []
        [closed] = quarantine.entries(conn, 10, include_closed=True)
    assert closed["resolution"] == "fixed"


def test_a_questionnaire_response_that_fails_leaves_the_patients_other_responses_mapped(
    tmp_path: Path, engine: Engine, import_files: ImportFn, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = response_deriver.map_instrument_responses

    def fragile(responses: Any, pack: Any, *context: Any) -> Any:
        if any(ref.resource_id == "qr-bad" for ref, _ in responses):
            raise ValueError("no")
        return real(responses, pack, *context)

    monkeypatch.setattr(response_deriver, "map_instrument_responses", fragile)

    def response(rid: str) -> dict[str, Any]:
        return {
            "resourceType": "QuestionnaireResponse",
            "id": rid,
            "status": "completed",
            "subject": {"reference": "Patient/p1"},
            "authored": "2025-03-01T10:00:00Z",
            "item": [{"linkId": "1", "answer": [{"valueString": "fine"}]}],
        }

    path = write_ndjson(tmp_path / "q.ndjson", patient("p1"), response("qr-bad"), response("qr-ok"))
    summary = import_files(path)
    assert summary.derive.mapping_failures == 1
    records = records_by_resource(engine)
    assert records["qr-bad"]["rule_id"] == "mapping-failed"
    assert records["qr-ok"]["rule_id"] != "mapping-failed"


def nul_patient() -> dict[str, Any]:
    nul = patient("p-nul", name=[{"family": "Nul\x00l", "given": ["A\x00"]}])
    nul["identifier"] = [{"system": "urn:sys\x00", "value": "v\x001"}]
    return nul


def test_a_patient_name_with_nul_is_quarantined_at_intake_naming_the_path(
    tmp_path: Path, engine: Engine, import_files: ImportFn
) -> None:
    """PostgreSQL text cannot hold NUL: it was stored, then stopped all derivation there."""
    path = write_ndjson(tmp_path / "a.ndjson", nul_patient(), patient("p2"), encounter("e1", "p2"))
    summary = import_files(path)
    assert summary.total("quarantined") == 1
    [problem] = summary.problems
    assert problem.fhir_path is not None
    assert problem.fhir_path.startswith(("Patient.name[0]", "Patient.identifier[0]"))
    assert records_by_resource(engine)["e1"]["job"] == "diagnose"


def test_a_nul_already_in_the_store_maps_on_every_backend(engine: Engine, pack: RulePack) -> None:
    """Stored before intake refused NUL (or by a path that does not look): derivation
    keeps it visible as U+FFFD instead of failing on PostgreSQL."""
    resource = nul_patient()
    with engine.begin() as conn:
        write_resources(
            conn,
            [
                IncomingResource(
                    "old",
                    "Patient",
                    "p-nul",
                    "h:1",
                    None,
                    None,
                    None,
                    None,
                    orjson.dumps(resource).decode(),
                )
            ],
            "2026-01-01T00:00:00Z",
        )
    assert update_journey(engine, pack).mapping_failures == 0
    with engine.connect() as conn:
        rows = conn.execute(select(person_links.c.patient_id, person_links.c.display_name))
        names = {row.patient_id: row.display_name for row in rows}
    assert names["p-nul"] == "A\ufffd Nul\ufffdl"


@pytest.fixture
def poisoned_person_links(engine: Engine) -> None:
    """The store refuses one Patient's person link, as a real database error: a CHECK
    constraint on PostgreSQL, a trigger on SQLite (which has no ALTER ... ADD CHECK)."""
    refuse_rows(engine, "person_links", "display_name", "Poison")


@pytest.mark.usefixtures("poisoned_person_links")
def test_a_patient_the_store_refuses_is_quarantined_and_the_batch_goes_on(
    tmp_path: Path, engine: Engine, import_files: ImportFn
) -> None:
    path = write_ndjson(
        tmp_path / "a.ndjson",
        patient("p1"),
        patient("p-poison", name=[{"family": "Poison", "given": ["Ivy"]}]),
        patient("p3"),
        encounter("e1", "p1"),
        encounter("e3", "p3"),
    )
    summary = import_files(path)
    assert summary.derive.mapping_failures == 1
    with engine.connect() as conn:
        linked = set(conn.execute(select(person_links.c.patient_id)).scalars())
        [entry] = quarantine.entries(conn, 10, stage="mapping")
        waiting = conn.execute(
            select(func.count()).where(current_resources.c.needs_derive.is_(True))
        ).scalar_one()
    assert linked == {"p1", "p3"}
    assert entry["resource_id"] == "p-poison"
    assert "Ivy" not in entry["error"]
    assert "Poison" not in entry["error"]
    assert waiting == 0
    assert {"e1", "e3"} <= set(records_by_resource(engine))


@pytest.fixture
def api(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    monkeypatch.setenv("CLINIC_PUSH_KEY", PUSH_KEY)
    settings = Settings(
        api_keys=[READ_KEY], push_clients=[{"source": "clinic", "key_env": "CLINIC_PUSH_KEY"}]
    )
    with TestClient(create_app(settings, engine)) as client:
        yield client


FHIR = {"Authorization": f"Bearer {PUSH_KEY}", "Content-Type": "application/fhir+json"}


def put(client: TestClient, resource: dict[str, Any]) -> Any:
    return client.put(
        f"/fhir/{resource['resourceType']}/{resource['id']}",
        content=orjson.dumps(resource),
        headers={**FHIR, "Prefer": "return=OperationOutcome"},
    )


@pytest.mark.usefixtures("poisoned_person_links")
def test_a_push_whose_mapping_fails_still_answers_with_its_id(
    api: TestClient, engine: Engine
) -> None:
    """It answered a plain-text 500 although the data was saved; a POSTing client never
    learnt the id it could correct."""
    created = api.post(
        "/fhir/Patient",
        content=orjson.dumps(patient("x", name=[{"family": "Poison"}]) | {"id": "ignored"}),
        headers=FHIR,
    )
    assert created.status_code == 201, created.text
    assert created.headers["Location"].split("/fhir/Patient/")[1]
    assert put(api, patient("p2")).status_code == 201
    with engine.connect() as conn:
        linked = set(conn.execute(select(person_links.c.patient_id)).scalars())
    assert linked == {"p2"}


def test_a_push_answers_mapping_lags_when_mapping_cannot_run(
    api: TestClient, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError("the rule pack fell over")

    # Mapping inside the push's transaction does not apply (it fell over, or the store
    # names another pack), and mapping after it cannot run either.
    monkeypatch.setattr("integration.push.service.derive_written", lambda *_a, **_k: None)
    monkeypatch.setattr("integration.push.service.update_journey", broken)
    answer = put(api, patient("p1"))
    assert answer.status_code == 201
    issues = answer.json()["issue"]
    assert any("mapping lags" in i["diagnostics"] and i["code"] == "transient" for i in issues)
    assert "fell over" not in answer.text
    assert answer.headers["X-Journey-Mapping"] == "lags"
    # Asked for the resource back (the default), the client still learns it.
    plain = api.put("/fhir/Patient/p2", content=orjson.dumps(patient("p2")), headers=FHIR)
    assert plain.status_code == 201
    assert plain.json()["id"] == "p2"
    assert plain.headers["X-Journey-Mapping"] == "lags"
    assert api.get("/fhir/Patient/p1", headers=FHIR).status_code == 200  # stored
    assert pending_count(engine) == 2  # and waiting for the next mapping run


def test_a_push_maps_what_it_wrote_not_the_stores_backlog(
    tmp_path: Path, api: TestClient, engine: Engine, pack: RulePack
) -> None:
    """A one-Patient PUT waited for a whole import's mapping (22 s on SQLite)."""
    backlog = write_ndjson(
        tmp_path / "b.ndjson", *(patient(f"b{n}") for n in range(30)), encounter("be", "b1")
    )
    # Stored, not yet mapped: what an import in progress leaves for its mapping step.
    IngestPipeline(engine, pack, "bulk", 1 << 20).store(
        FileReader(1 << 20).read(backlog), IngestSummary("bulk")
    )
    assert pending_count(engine) == 31
    assert put(api, patient("p1")).status_code == 201
    assert put(api, encounter("e1", "p1", "EMER")).status_code == 201
    assert pending_count(engine) == 31  # the backlog waits for its own run
    assert records_by_resource(engine)["e1"]["job"] == "diagnose"


def test_a_bundle_over_the_entry_limit_is_refused_naming_the_limit(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLINIC_PUSH_KEY", PUSH_KEY)
    settings = Settings(
        push_clients=[{"source": "clinic", "key_env": "CLINIC_PUSH_KEY"}], max_bundle_entries=3
    )
    bundle = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [
            {"resource": patient(f"p{n}"), "request": {"method": "PUT", "url": f"Patient/p{n}"}}
            for n in range(4)
        ],
    }
    with TestClient(create_app(settings, engine)) as client:
        refused = client.post("/fhir", content=orjson.dumps(bundle), headers=FHIR)
        stated = client.get("/fhir/metadata").json()
    assert refused.status_code == 413
    assert refused.json()["resourceType"] == "OperationOutcome"
    assert "limit of 3" in refused.text
    assert "JOURNEY_MAX_BUNDLE_ENTRIES" in refused.text
    interactions = stated["rest"][0]["interaction"]
    assert all("at most 3 entries" in i["documentation"] for i in interactions)
    assert pending_count(engine) == 0


def test_a_rejected_resource_whose_id_holds_nul_is_quarantined_on_every_backend(
    tmp_path: Path, engine: Engine, import_files: ImportFn
) -> None:
    """What a rejected input says about itself goes into the quarantine's columns."""
    path = write_ndjson(
        tmp_path / "a.ndjson", patient("bad\x00id"), {"resourceType": "Pat\x00ient"}, patient("ok")
    )
    summary = import_files(path)
    assert summary.total("quarantined") == 2
    assert summary.by_type["Patient"].new == 1
    with engine.connect() as conn:
        ids = sorted(str(e["resource_id"]) for e in quarantine.entries(conn, 10))
    assert "bad\\u0000id" in ids


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_another_clients_push_goes_between_the_entries_of_a_large_batch(
    engine: Engine, pack: RulePack
) -> None:
    """A batch held the lock for all its entries (1,000 took 56 s on PostgreSQL) and
    another client's push timed out meanwhile."""
    service = PushService(engine, pack, Settings(max_resource_bytes=1 << 20))
    bundle = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [
            {"resource": patient(f"b{n}"), "request": {"method": "PUT", "url": f"Patient/b{n}"}}
            for n in range(300)
        ],
    }
    batch_done = threading.Event()

    def send_batch() -> None:
        service.process_bundle("clinic", bundle)
        batch_done.set()

    sender = threading.Thread(target=send_batch)
    sender.start()
    try:
        while not pending_or_mapped(engine):
            time.sleep(0.01)
        one = PlannedWrite(0, "PUT", "Patient", "other", patient("other"), None, None, None)
        service.write_one("other-clinic", one)
        assert not batch_done.is_set()  # it went between the batch's entries
    finally:
        sender.join(timeout=120)
    assert batch_done.is_set()


def pending_or_mapped(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(current_resources)).scalar_one())


def test_the_push_lock_is_taken_in_the_order_it_was_asked_for() -> None:
    """threading.Lock is not: a batch releasing and asking again at once kept winning
    (30 other pushes in 6 s against 987 with this lock, measured)."""
    lock = FairLock()
    order: list[str] = []

    def take(name: str) -> None:
        with lock:
            order.append(name)

    lock.__enter__()
    waiting = []
    for name in ("first", "second", "third"):
        thread = threading.Thread(target=take, args=(name,))
        thread.start()
        waiting.append(thread)
        while lock._next_ticket < len(waiting) + 1:  # queued before the next one asks
            time.sleep(0.001)
    lock.__exit__(None, None, None)
    for thread in waiting:
        thread.join(timeout=10)
    assert order == ["first", "second", "third"]


def test_a_batch_entry_the_store_refuses_fails_alone(api: TestClient, engine: Engine) -> None:
    """It escaped as a 500 for the whole Bundle after earlier entries were stored (and
    never mapped), and later entries were never tried."""
    refuse_rows(engine, "raw_resources", "content", "Quartermaine")
    resources = [
        patient("ok1"),
        patient("bad", name=[{"family": "Quartermaine"}]),
        patient("ok2"),
        encounter("e2", "ok2", "EMER"),
    ]
    bundle = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [
            {
                "resource": r,
                "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"},
            }
            for r in resources
        ],
    }
    answer = api.post("/fhir", content=orjson.dumps(bundle), headers=FHIR)
    assert answer.status_code == 200, answer.text
    statuses = [e["response"]["status"] for e in answer.json()["entry"]]
    assert statuses == ["201 Created", "500", "201 Created", "201 Created"]
    assert "Quartermaine" not in answer.text
    assert pending_count(engine) == 0  # what was written was mapped
    assert records_by_resource(engine)["e2"]["job"] == "diagnose"


@pytest.mark.parametrize("store_url", ["postgresql"], indirect=True)
def test_a_database_that_refuses_connections_is_a_503_not_a_500(
    api: TestClient, engine: Engine, postgres_admin: Engine
) -> None:
    """psycopg's error for a connection it could not make has no SQLSTATE: it was taken
    for a data error and answered 500."""
    with database_away(postgres_admin, str(engine.url.database)):
        pushed = put(api, patient("p1"))
        read = api.get("/status", headers={"Authorization": f"Bearer {READ_KEY}"})
    assert pushed.status_code == 503, pushed.text
    assert pushed.json()["issue"][0]["code"] == "transient"
    assert pushed.headers["Retry-After"] == "5"
    assert read.status_code == 503, read.text
    assert read.headers["content-type"].startswith("application/problem+json")
    assert put(api, patient("p1")).status_code == 201  # back, and nothing was lost
