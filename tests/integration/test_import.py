"""The import pipeline end to end on the embedded store: shapes, idempotency, bad input,
identity across sources, late arrivals, remap."""

from __future__ import annotations

import shutil
from pathlib import Path

import orjson
import pytest
from sqlalchemy import Engine, func, select

from integration.cli.demo_population import PAYER, PROVIDER, write_sample
from integration.journey.rule_packs import set_store_pack
from integration.journey.update import update_journey
from integration.store import queries
from integration.store.quarantine import entries as quarantine_entries
from integration.store.schema import job_records, quarantine, raw_resources
from mappings.rulepack import DEFAULT_PACK, RulePack
from tests.conftest import (
    FIXTURES,
    MAIDEN,
    MARRIED,
    SSN,
    ImportFn,
    encounter,
    patient,
    person,
    write_ndjson,
)


def count(engine: Engine, table: object) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())  # type: ignore[arg-type]


def journey_of(engine: Engine, source: str, patient_id: str) -> list[dict]:
    with engine.connect() as conn:
        people = queries.list_people(conn, 1000)
        person = next(
            p
            for p in people
            if any(s["source"] == source and s["patient_id"] == patient_id for s in p["sources"])
        )
        return queries.journey(conn, person["id"], 1000)


def test_sample_population_imports_and_spans_all_three_jobs(
    tmp_path: Path, engine: Engine, import_files: ImportFn
) -> None:
    paths = write_sample(tmp_path / "data")
    clinic = import_files(paths[PROVIDER], source=PROVIDER)
    plan = import_files(paths[PAYER], source=PAYER)
    assert clinic.total("quarantined") == plan.total("quarantined") == 0
    assert clinic.by_type["Observation"].new > 0  # kept raw though no rule maps it
    assert set(clinic.derive.records_by_job) >= {"diagnose", "treat", "keep_well"}
    with engine.connect() as conn:
        status = queries.store_status(conn)
    # Every fifth of the 40 people is in both sources: 48 source Patients, 40 people.
    assert status["resources_by_type"]["Patient"] == 48
    assert status["people"] == 40


def test_reimporting_the_same_files_changes_nothing(
    tmp_path: Path, engine: Engine, import_files: ImportFn
) -> None:
    paths = write_sample(tmp_path / "data", people=10)
    first = import_files(paths[PROVIDER], source=PROVIDER)
    raw_before, records_before = count(engine, raw_resources), count(engine, job_records)
    again = import_files(paths[PROVIDER], source=PROVIDER)
    assert again.total("new") == again.total("changed") == 0
    assert again.total("unchanged") == first.total("new")
    assert again.derive.resources == 0
    assert (count(engine, raw_resources), count(engine, job_records)) == (
        raw_before,
        records_before,
    )


def test_each_input_shape_imports(engine: Engine, import_files: ImportFn) -> None:
    summary = import_files(
        FIXTURES / "patient-ann.json",
        FIXTURES / "transaction-bundle-urn-uuid.json",
        FIXTURES / "searchset-with-outcome.json",
    )
    assert summary.total("quarantined") == 0
    assert summary.by_type["Patient"].new == 3
    assert summary.by_type["OperationOutcome"].new == 1
    # urn:uuid references inside a transaction resolve to the entry's id (an emergency
    # visit with nothing more known is unclassified: a setting is no evidence of a job).
    records = journey_of(engine, "test-source", "5f1a2b3c-0000-4000-8000-000000000001")
    assert [r["job"] for r in records] == ["unclassified"]
    # An absolute reference to the Patient works as well.
    assert [r["job"] for r in journey_of(engine, "test-source", "cy")] == ["treat"]


def test_raw_zone_keeps_the_exact_bytes_received(engine: Engine, import_files: ImportFn) -> None:
    import_files(FIXTURES / "patient-ann.json")
    with engine.connect() as conn:
        row = conn.execute(select(raw_resources)).one()
    assert row.content.encode() == (FIXTURES / "patient-ann.json").read_bytes()
    assert (row.resource_type, row.resource_id, row.version_key) == ("Patient", "ann", "v:1")
    assert row.last_updated == "2025-01-01T00:00:00Z"
    assert row.origin.endswith("patient-ann.json")


BAD_LINES = [
    patient("good-1"),
    '{"resourceType": "Patient", "id": "broken"',  # malformed JSON
    {"resourceType": "Spaceship", "id": "s1"},  # unknown type
    {"id": "no-type"},  # missing resourceType
    patient("bad-date", birthDate="1970-13-01"),  # fails R4 validation
    orjson.loads((FIXTURES / "encounter-r5-shape.json").read_bytes()),  # R5 Encounter
    encounter("naive", "good-1", start="2025-01-28T00:00:00"),  # kept, warning
    encounter("partial", "good-1", start="2025-01"),  # kept, interval
    encounter("orphan", "never-seen", klass="EMER"),  # kept, waits for its Patient
    patient("good-2"),
]


def test_bad_input_is_quarantined_with_file_line_and_path_and_the_rest_imports(
    tmp_path: Path, engine: Engine, import_files: ImportFn
) -> None:
    path = write_ndjson(tmp_path / "mixed.ndjson", *BAD_LINES)
    truncated = tmp_path / "truncated.ndjson"
    truncated.write_bytes(orjson.dumps(patient("good-3")) + b"\n" + b'{"resourceType": "Pat')
    empty = tmp_path / "empty.ndjson"
    empty.write_bytes(b"")
    summary = import_files(path, truncated, empty)

    assert summary.by_type["Patient"].new == 3
    assert summary.by_type["Encounter"].new == 3
    assert summary.total("quarantined") == 7
    problems = {
        (p.location, p.fhir_path): p.error for p in summary.problems if p.origin == str(path)
    }
    assert "malformed JSON" in problems[("line 2", None)]
    assert "unknown resourceType" in problems[("line 3", "resourceType")]
    assert problems[("line 4", "resourceType")] == "missing resourceType"
    assert ("line 5", "Patient.birthDate") in problems
    assert "R5 Encounter" in problems[("line 6", "Encounter.class")]
    by_origin = {p.origin: p for p in summary.problems}
    assert by_origin[str(truncated)].error.startswith("truncated line")
    assert by_origin[str(empty)].error.startswith("empty file")
    assert summary.warnings == [
        f"{path}, line 7: Encounter.period.start: dateTime without timezone, read as UTC"
    ]
    assert summary.orphan_count == 1
    assert "Encounter/orphan points to Patient/never-seen" in summary.orphans[0]
    assert "line 9" in summary.orphans[0]
    with engine.connect() as conn:
        entries = quarantine_entries(conn, 100)
    assert len(entries) == 7
    assert {e["origin"] for e in entries} == {str(path), str(truncated), str(empty)}
    # Nothing about the values leaks into the messages.
    assert not any("1970-13-01" in e["error"] for e in entries)


def test_partial_date_record_spans_the_month(
    tmp_path: Path, engine: Engine, import_files: ImportFn
) -> None:
    import_files(
        write_ndjson(tmp_path / "a.ndjson", patient("p"), encounter("e", "p", start="2025-01"))
    )
    [record] = journey_of(engine, "test-source", "p")
    assert (record["occurred_start"], record["occurred_end"]) == (
        "2025-01-01T00:00:00Z",
        "2025-02-01T00:00:00Z",
    )
    assert record["warnings"] == ["Encounter.period.start: partial date (year and month only)"]


def test_quarantined_resource_fixed_and_reimported_is_resolved(
    tmp_path: Path, engine: Engine, import_files: ImportFn
) -> None:
    path = write_ndjson(tmp_path / "a.ndjson", patient("p1", birthDate="1970-13-01"))
    assert import_files(path).total("quarantined") == 1
    write_ndjson(path, patient("p1", birthDate="1970-12-01"))
    fixed = import_files(path)
    assert fixed.by_type["Patient"].new == 1
    with engine.connect() as conn:
        assert quarantine_entries(conn, 10) == []
        resolved = quarantine_entries(conn, 10, include_closed=True)
    assert resolved[0]["resolved_at"] is not None


def test_reimporting_a_still_broken_file_does_not_duplicate_quarantine(
    tmp_path: Path, engine: Engine, import_files: ImportFn
) -> None:
    path = write_ndjson(tmp_path / "a.ndjson", "{oops", patient("p", birthDate="x"))
    import_files(path)
    import_files(path)
    assert count(engine, quarantine) == 2


def test_encounter_before_its_patient_joins_the_journey_when_the_patient_arrives(
    tmp_path: Path, engine: Engine, import_files: ImportFn
) -> None:
    import_files(write_ndjson(tmp_path / "e.ndjson", encounter("e1", "late", klass="EMER")))
    with engine.connect() as conn:
        assert queries.list_people(conn, 10) == []
    summary = import_files(write_ndjson(tmp_path / "p.ndjson", patient("late")))
    assert summary.orphan_count == 0
    assert [r["source"]["resource_id"] for r in journey_of(engine, "test-source", "late")] == ["e1"]


def test_an_import_reports_its_own_records_in_no_journey_not_the_stores(
    tmp_path: Path, engine: Engine, import_files: ImportFn
) -> None:
    first = write_ndjson(tmp_path / "first.ndjson", encounter("e1", "not-yet", klass="EMER"))
    assert import_files(first).orphan_count == 1
    other = write_ndjson(tmp_path / "other.ndjson", encounter("e2", "later", klass="EMER"))
    assert import_files(other, source="elsewhere").orphans == [
        f"{other}, line 1: Encounter/e2 points to Patient/later, not seen yet in source "
        "elsewhere; kept, and it joins the journey when that Patient arrives"
    ]
    unrelated = write_ndjson(tmp_path / "p.ndjson", patient("someone"))
    assert import_files(unrelated).orphan_count == 0
    # Read again, a file still names its own records that wait for their Patient.
    again = import_files(first)
    assert again.orphan_count == 1
    assert "Encounter/e1 points to Patient/not-yet" in again.orphans[0]


def test_condition_arriving_after_its_encounter_updates_the_concern(
    tmp_path: Path, engine: Engine, import_files: ImportFn
) -> None:
    enc = encounter("e1", "p", diagnosis=[{"condition": {"reference": "Condition/c1"}}])
    del enc["reasonCode"]
    import_files(write_ndjson(tmp_path / "a.ndjson", patient("p"), enc))
    # Ambulatory, nothing more known: no evidence of a job yet.
    assert journey_of(engine, "test-source", "p")[0]["job"] == "unclassified"
    condition = {
        "resourceType": "Condition",
        "id": "c1",
        "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "E11.9"}]},
        "subject": {"reference": "Patient/p"},
    }
    import_files(write_ndjson(tmp_path / "c.ndjson", condition))
    [record] = journey_of(engine, "test-source", "p")
    assert record["job"] == "keep_well"
    assert record["concern_codes"] == ["http://hl7.org/fhir/sid/icd-10-cm|E11.9"]


def test_patients_sharing_an_identifier_across_sources_are_one_person(
    tmp_path: Path, engine: Engine, import_files: ImportFn
) -> None:
    shared = [{"system": SSN, "value": "999-55-0001"}]
    import_files(
        write_ndjson(
            tmp_path / "a.ndjson",
            patient("a1", identifier=shared, birthDate="1970-01-01"),
            encounter("ea", "a1", klass="EMER"),
        ),
        source="clinic",
    )
    import_files(
        write_ndjson(
            tmp_path / "b.ndjson",
            patient("b7", identifier=shared, birthDate="1970-01-01"),
            encounter("eb", "b7", klass="IMP", start="2025-04-01T00:00:00Z"),
        ),
        source="plan",
    )
    with engine.connect() as conn:
        [person] = queries.list_people(conn, 10)
        records = queries.journey(conn, person["id"], 10)
    assert {(s["source"], s["patient_id"]) for s in person["sources"]} == {
        ("clinic", "a1"),
        ("plan", "b7"),
    }
    assert [(r["job"], r["source"]["source"]) for r in records] == [
        ("diagnose", "clinic"),
        ("treat", "plan"),
    ]


def test_a_patient_bridging_two_people_merges_them(
    tmp_path: Path, engine: Engine, import_files: ImportFn
) -> None:
    import_files(
        write_ndjson(tmp_path / "a.ndjson", person("a", ssn="123-45-0001", name=MAIDEN)),
        source="s1",
    )
    import_files(
        write_ndjson(tmp_path / "b.ndjson", person("b", mbi="1EG4-TE5-MK72", name=MARRIED)),
        source="s2",
    )
    with engine.connect() as conn:
        before = [p["id"] for p in queries.list_people(conn, 10)]
    assert len(before) == 2
    bridge = person("c", ssn="123-45-0001", mbi="1EG4-TE5-MK72", name=MAIDEN)
    import_files(write_ndjson(tmp_path / "c.ndjson", bridge), source="s3")
    with engine.connect() as conn:
        [survivor] = queries.list_people(conn, 10)
        assert survivor["id"] == min(before)
        assert queries.resolve_person(conn, max(before)) == survivor["id"]
    assert len(survivor["sources"]) == 3


def test_new_version_replaces_the_record_and_a_late_old_version_does_not(
    tmp_path: Path, engine: Engine, import_files: ImportFn
) -> None:
    v1 = encounter(
        "e1", "p", klass="AMB", meta={"versionId": "1", "lastUpdated": "2025-01-01T00:00:00Z"}
    )
    v2 = encounter(
        "e1", "p", klass="IMP", meta={"versionId": "2", "lastUpdated": "2025-02-01T00:00:00Z"}
    )
    import_files(write_ndjson(tmp_path / "a.ndjson", patient("p"), v1))
    changed = import_files(write_ndjson(tmp_path / "b.ndjson", v2))
    assert changed.by_type["Encounter"].changed == 1
    assert [r["job"] for r in journey_of(engine, "test-source", "p")] == ["treat"]
    v1_again = encounter(
        "e1", "p", klass="EMER", meta={"versionId": "0", "lastUpdated": "2024-12-01T00:00:00Z"}
    )
    import_files(write_ndjson(tmp_path / "c.ndjson", v1_again))
    assert [r["job"] for r in journey_of(engine, "test-source", "p")] == ["treat"]
    assert count(engine, raw_resources) == 4  # every version kept raw


def test_a_pack_set_in_the_store_is_applied_to_stored_data_without_importing_again(
    tmp_path: Path, engine: Engine, import_files: ImportFn, pack: RulePack
) -> None:
    import_files(write_ndjson(tmp_path / "a.ndjson", patient("p"), encounter("e", "p", klass="HH")))
    assert journey_of(engine, "test-source", "p")[0]["job"] == "keep_well"
    changed = tmp_path / "pack.toml"
    text = DEFAULT_PACK.read_text().replace(f'version = "{pack.version}"', 'version = "9999.1.0"')
    text = text.replace(
        'id = "encounter.class.home-health"\njob = "keep_well"',
        'id = "encounter.class.home-health"\njob = "diagnose"',
    )
    changed.write_text(text)
    set_store_pack(engine, changed)
    # The pack this process holds is the bundled one; the update uses the store's.
    summary = update_journey(engine, pack)
    assert summary.resources == 2
    [record] = journey_of(engine, "test-source", "p")
    assert (record["job"], record["reason"]["pack_version"]) == ("diagnose", "default 9999.1.0")


def test_folder_import_reads_every_file(
    tmp_path: Path, engine: Engine, import_files: ImportFn
) -> None:
    folder = tmp_path / "export"
    folder.mkdir()
    write_ndjson(folder / "Patient.ndjson", patient("p"))
    write_ndjson(folder / "Encounter.ndjson", encounter("e", "p"))
    shutil.copy(FIXTURES / "patient-ann.json", folder / "ann.json")
    summary = import_files(folder)
    assert summary.files == 3
    assert summary.total("new") == 3


@pytest.mark.parametrize("batch", [1, 7])
def test_small_batches_give_the_same_result(
    tmp_path: Path, engine: Engine, pack: RulePack, batch: int
) -> None:
    from integration.ingest.pipeline import IngestPipeline

    paths = write_sample(tmp_path / "data", people=6)
    summary = IngestPipeline(engine, pack, PROVIDER, 1 << 20, batch_size=batch).run(
        [paths[PROVIDER]]
    )
    assert summary.total("quarantined") == 0
    assert sum(summary.derive.records_by_job.values()) == count(engine, job_records)


def test_patients_bridged_inside_one_batch_are_one_person(
    tmp_path: Path, engine: Engine, import_files: ImportFn
) -> None:
    from integration.journey.identity import person_id_for

    path = write_ndjson(
        tmp_path / "a.ndjson",
        person("a", ssn="123-45-0001", name=MAIDEN),
        person("b", mbi="1EG4-TE5-MK72", name=MARRIED),
        person("c", ssn="123-45-0001", mbi="1EG4-TE5-MK72", name=MAIDEN),
        person("d", ssn="123-45-0004"),
    )
    import_files(path)
    with engine.connect() as conn:
        people = queries.list_people(conn, 10)
    by_patients = {tuple(sorted(s["patient_id"] for s in p["sources"])): p["id"] for p in people}
    assert by_patients == {
        ("a", "b", "c"): person_id_for("test-source", "a"),
        ("d",): person_id_for("test-source", "d"),
    }


def test_questionnaire_responses_without_subject_are_not_taken_for_one_patient(
    tmp_path: Path, engine: Engine, import_files: ImportFn
) -> None:
    def phq9(rid: str, authored: str) -> dict[str, object]:
        return {
            "resourceType": "QuestionnaireResponse",
            "id": rid,
            "questionnaire": "http://loinc.org/q/44249-1",
            "status": "completed",
            "authored": authored,
            "item": [{"linkId": "/44261-6", "answer": [{"valueInteger": 15}]}],
        }

    import_files(
        write_ndjson(tmp_path / "q.ndjson", phq9("q1", "2025-01-01"), phq9("q2", "2025-02-01"))
    )
    with engine.connect() as conn:
        rules = (
            conn.execute(select(job_records.c.rule_id).order_by(job_records.c.resource_id))
            .scalars()
            .all()
        )
    assert rules == ["questionnaire.screen.positive", "questionnaire.screen.positive"]


def test_a_fix_resolves_its_quarantine_entry_among_many_in_one_batch(
    tmp_path: Path, engine: Engine, import_files: ImportFn
) -> None:
    bad = [patient(f"p{i}", birthDate="1970-13-01") for i in range(5)]
    import_files(write_ndjson(tmp_path / "a.ndjson", *bad))
    fixed = [patient("p1"), patient("p3"), patient("other")]
    import_files(write_ndjson(tmp_path / "b.ndjson", *fixed))
    with engine.connect() as conn:
        still_open = sorted(e["resource_id"] for e in quarantine_entries(conn, 10))
    assert still_open == ["p0", "p2", "p4"]


def test_encounter_with_a_conditional_subject_is_kept_and_reported_as_in_no_journey(
    tmp_path: Path, engine: Engine, import_files: ImportFn
) -> None:
    conditional = encounter(
        "e1", "x", klass="EMER", subject={"reference": "Patient?identifier=urn:x|1"}
    )
    summary = import_files(write_ndjson(tmp_path / "a.ndjson", conditional))
    assert summary.by_type["Encounter"].new == 1
    assert summary.orphan_count == 1
    assert "names no subject Patient fhir-journey can read" in summary.orphans[0]
    assert count(engine, job_records) == 1


def test_two_versions_of_one_resource_in_one_batch_keep_the_newest_current(
    tmp_path: Path, engine: Engine, import_files: ImportFn
) -> None:
    v2 = encounter(
        "e1", "p", klass="IMP", meta={"versionId": "2", "lastUpdated": "2025-02-01T00:00:00Z"}
    )
    v1 = encounter(
        "e1", "p", klass="EMER", meta={"versionId": "1", "lastUpdated": "2025-01-01T00:00:00Z"}
    )
    v3 = encounter("e1", "p", klass="HH", meta={"versionId": "3"})
    summary = import_files(write_ndjson(tmp_path / "a.ndjson", patient("p"), v2, v1))
    assert (summary.by_type["Encounter"].new, summary.by_type["Encounter"].changed) == (1, 1)
    assert [r["job"] for r in journey_of(engine, "test-source", "p")] == ["treat"]
    # A version without lastUpdated cannot be ordered: the later arrival wins.
    import_files(write_ndjson(tmp_path / "b.ndjson", v3, v3))
    assert [r["job"] for r in journey_of(engine, "test-source", "p")] == ["keep_well"]


@pytest.mark.parametrize("processes", [0, 2])
def test_validation_in_worker_processes_stores_the_same_in_the_same_order(
    engine: Engine, pack: RulePack, tmp_path: Path, processes: int
) -> None:
    from integration.ingest.pipeline import IngestPipeline

    lines: list[dict[str, object] | str] = []
    for n in range(60):
        lines.append(patient(f"p{n}"))
        lines.append(encounter(f"e{n}", f"p{n}", start="2025-03-01T10:00:00"))  # naive: warning
    lines[44] = patient("bad", birthDate="1970-13-01")
    lines[100] = '{"resourceType": "Patient", "id": "broken"'
    # Lines the workers hand back to the importer's own reader: not one plain resource.
    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"resource": patient("pb")}, {"resource": encounter("eb", "pb")}],
    }
    lines += [bundle, "[1, 2]", {"id": "no-type"}]
    data = write_ndjson(tmp_path / "many.ndjson", *lines)
    summary = IngestPipeline(engine, pack, "pool", 1 << 20, batch_size=25, processes=processes).run(
        [data]
    )
    assert summary.by_type["Patient"].new == 59
    assert summary.by_type["Encounter"].new == 61
    assert summary.by_type["Encounter"].warnings == 60
    problems = [(p.location, p.fhir_path, p.error[:24]) for p in summary.problems]
    assert problems == [
        ("line 45", "Patient.birthDate", problems[0][2]),
        ("line 101", None, "malformed JSON at column"),
        ("line 122", None, "expected a JSON object, "),
        ("line 123", "resourceType", "missing resourceType"),
    ]
    with engine.connect() as conn:
        stored = (
            conn.execute(select(raw_resources.c.location).order_by(raw_resources.c.id))
            .scalars()
            .all()
        )
    assert stored[-2:] == ["line 121, entry 0", "line 121, entry 1"]
    numbers = [int(location.removeprefix("line ").split(",")[0]) for location in stored]
    assert numbers == sorted(numbers)  # the file's order, whatever process validated


def test_a_trusted_import_skips_validation_but_still_needs_a_type_and_an_id(
    engine: Engine, pack: RulePack, tmp_path: Path
) -> None:
    from integration.ingest.pipeline import IngestPipeline

    data = write_ndjson(
        tmp_path / "trusted.ndjson",
        patient("p1", birthDate="1970-13-01"),  # invalid R4, kept: the source is trusted
        {"id": "x"},
        patient("bad id!"),
    )
    summary = IngestPipeline(engine, pack, "trusted", 1 << 20, validate=False).run([data])
    assert summary.by_type["Patient"].new == 1
    assert [p.fhir_path for p in summary.problems] == ["resourceType", "Patient.id"]


@pytest.mark.slow
def test_a_validated_import_maps_while_its_workers_take_the_next_batches_in(
    pack: RulePack, tmp_path: Path
) -> None:
    """On SQLite, with validation in worker processes, the journey fills while the files
    are still being stored, and ends as a mapping after the storing would have made it:
    the clinic's files come Encounter before Patient, so records are mapped before their
    Patient has a person, and join that person when it arrives."""
    from integration.ingest.pipeline import IngestPipeline
    from integration.journey.update import pending_count
    from integration.store.engine import open_store
    from tests.conftest import record_keys

    engine = open_store(f"sqlite:///{tmp_path / 'rounds.db'}")
    clinic = write_sample(tmp_path / "sample")[PROVIDER]
    # Evidence naming Encounters mapped in earlier rounds: they are mapped again (and
    # counted once).
    write_ndjson(
        clinic / "Procedure.ndjson",
        *(
            {
                "resourceType": "Procedure",
                "id": f"proc-{n}",
                "status": "completed",
                "code": {"text": "procedure"},
                "subject": {"reference": "Patient/rc-pat-000"},
                "encounter": {"reference": f"Encounter/rc-enc-000{n}"},
            }
            for n in range(1, 4)
        ),
    )
    seen_when_stored: dict[str, int] = {}

    def stored() -> None:
        with engine.connect() as conn:
            seen_when_stored["people"] = len(queries.list_people(conn, 1000))
        seen_when_stored["pending"] = pending_count(engine)

    rounds = IngestPipeline(
        engine, pack, PROVIDER, 1 << 20, batch_size=25, store_batch_size=40, processes=2
    )
    assert rounds.derives_while_storing
    summary = rounds.run([clinic], before_derive=stored)
    after = open_store(f"sqlite:///{tmp_path / 'mapped-after.db'}")
    try:
        one_go = IngestPipeline(after, pack, PROVIDER, 1 << 20, batch_size=25, processes=0)
        assert not one_go.derives_while_storing
        expected = one_go.run([clinic])
        with engine.connect() as conn, after.connect() as conn_after:
            people = [p["id"] for p in queries.list_people(conn, 1000)]
            assert people == [p["id"] for p in queries.list_people(conn_after, 1000)]
        # Everyone was in the journey before the storing ended (the clinic's 32 Patients
        # come before its responses); only the last batch was left to map once it had.
        assert seen_when_stored["people"] == len(people) == 32
        assert 0 < seen_when_stored["pending"] <= 40
        assert record_keys(engine) == record_keys(after)
        assert count(engine, job_records) == count(after, job_records)
    finally:
        after.dispose()
        engine.dispose()
    # The rounds are counted with the rest: the summary tells what one mapping would.
    assert summary.derive.resources == expected.derive.resources
    assert summary.derive.records_by_job == expected.derive.records_by_job
    assert summary.derive.people_linked == expected.derive.people_linked
    assert summary.derive.mapping_failures == expected.derive.mapping_failures
    assert summary.orphan_count == expected.orphan_count == 0


def test_a_failing_round_while_storing_stops_the_rounds_not_the_import(
    pack: RulePack,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The files are stored first, whatever mapping meets: a round that fails (the
    store busy, say, after some of its batches were committed) is logged, no other round
    runs, and the mapping once the files are stored maps the rest; the summary counts
    both."""
    import integration.ingest.pipeline as pipeline_module
    from integration.ingest.pipeline import IngestPipeline
    from integration.journey.update import pending_count
    from integration.store.engine import open_store

    calls: list[int] = []
    real_update = pipeline_module.update_journey

    def failing_first(*args: object, **kwargs: object) -> object:
        calls.append(1)
        done = real_update(*args, **kwargs)  # type: ignore[arg-type]
        if len(calls) == 1:
            assert done.resources > 0  # committed, then failed
            raise RuntimeError("the store was busy")
        return done

    monkeypatch.setattr(pipeline_module, "update_journey", failing_first)
    engine = open_store(f"sqlite:///{tmp_path / 'rounds.db'}")
    try:
        clinic = write_sample(tmp_path / "sample")[PROVIDER]
        summary = IngestPipeline(
            engine, pack, PROVIDER, 1 << 20, batch_size=25, store_batch_size=40, processes=2
        ).run([clinic])
        assert summary.total("new") == 375  # every line of the clinic's files
        assert len(calls) == 2  # the failed round, then the mapping after the storing
        assert pending_count(engine) == 0
        assert summary.derive.resources == 375
        with engine.connect() as conn:
            assert len(queries.list_people(conn, 1000)) == 32
    finally:
        engine.dispose()
    warning = next(r for r in caplog.records if "mapping while storing stopped" in r.message)
    assert "RuntimeError" in warning.getMessage()


def test_on_postgresql_an_import_maps_after_its_files_are_stored(
    postgres_engine: Engine, pack: RulePack
) -> None:
    """The server's processes want the cores the rounds would take (measured slower)."""
    from integration.ingest.pipeline import IngestPipeline

    pipeline = IngestPipeline(postgres_engine, pack, PROVIDER, 1 << 20, processes=2)
    assert not pipeline.derives_while_storing


def test_a_trusted_import_in_worker_processes_stores_what_one_process_stores(
    engine: Engine, pack: RulePack, tmp_path: Path
) -> None:
    from integration.ingest.pipeline import IngestPipeline

    lines: list[dict[str, object] | str] = []
    for n in range(40):
        lines.append(patient(f"p{n}", meta={"lastUpdated": f"2025-01-{n % 28 + 1:02d}T00:00:00Z"}))
        lines.append(encounter(f"e{n}", f"p{n}"))
    lines[30] = patient("bad id!")
    lines[61] = '{"resourceType": "Patient", "id": "cut'
    lines.append(
        {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": patient("pb")}]}
    )
    data = write_ndjson(tmp_path / "trusted.ndjson", *lines)

    def stored(
        source: str, processes: int
    ) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
        IngestPipeline(
            engine, pack, source, 1 << 20, batch_size=25, validate=False, processes=processes
        ).run([data])
        with engine.connect() as conn:
            raw = conn.execute(
                select(
                    raw_resources.c.resource_type,
                    raw_resources.c.resource_id,
                    raw_resources.c.version_key,
                    raw_resources.c.last_updated,
                    raw_resources.c.location,
                )
                .where(raw_resources.c.source == source)
                .order_by(raw_resources.c.id)
            )
            rejected = conn.execute(
                select(quarantine.c.location, quarantine.c.fhir_path, quarantine.c.error)
                .where(quarantine.c.source == source)
                .order_by(quarantine.c.id)
            )
            return [tuple(row) for row in raw], [tuple(row) for row in rejected]

    in_process = stored("one-process", 0)
    assert len(in_process[0]) == 79
    assert len(in_process[1]) == 2
    assert in_process[0][0][3] == "2025-01-01T00:00:00Z"
    assert stored("worker-processes", 2) == in_process


def test_counts_a_version_sent_again_as_unchanged_whether_or_not_it_is_current(
    import_files: ImportFn, tmp_path: Path
) -> None:
    v1 = encounter("e1", "p", meta={"versionId": "1", "lastUpdated": "2025-01-01T00:00:00Z"})
    v2 = encounter("e1", "p", meta={"versionId": "2", "lastUpdated": "2025-02-01T00:00:00Z"})
    first = import_files(write_ndjson(tmp_path / "a.ndjson", patient("p"), v1, v2))
    assert (first.by_type["Encounter"].new, first.by_type["Encounter"].changed) == (1, 1)
    # v1 is stored but no longer current; v2 is current; v3 arrives twice in one batch.
    v3 = encounter("e1", "p", meta={"versionId": "3", "lastUpdated": "2025-03-01T00:00:00Z"})
    again = import_files(write_ndjson(tmp_path / "b.ndjson", v1, v2, v3, v3))
    counts = again.by_type["Encounter"]
    assert (counts.new, counts.changed, counts.unchanged) == (0, 1, 3)


def test_bundle_entries_claiming_one_identity_are_not_collapsed_into_versions(
    tmp_path: Path, engine: Engine, import_files: ImportFn
) -> None:
    def entry(full_url: str, resource: dict[str, object]) -> dict[str, object]:
        return {"fullUrl": full_url, "resource": resource}

    male = {"resourceType": "Patient", "gender": "male"}
    female = {"resourceType": "Patient", "gender": "female"}
    visit = encounter("e1", "x")
    visit["subject"] = {"reference": "urn:uuid:aaa"}
    versioned = [patient("v", meta={"versionId": str(n)}) for n in (1, 2)]
    collection = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [
            entry("urn:uuid:aaa", male),
            entry("urn:uuid:bbb", visit),
            entry("urn:uuid:aaa", female),  # the same fullUrl as entry 0
            entry("urn:uuid:ccc", patient("p9")),
            entry("urn:uuid:ddd", patient("p9", gender="other")),  # the same id as entry 3
            entry("urn:uuid:eee", versioned[0]),
            entry("urn:uuid:eee", versioned[1]),  # versions of one resource: allowed
        ],
    }
    path = tmp_path / "collection.json"
    path.write_bytes(orjson.dumps(collection))
    summary = import_files(path)

    assert summary.by_type["Patient"].quarantined == 2
    assert (summary.by_type["Patient"].new, summary.by_type["Patient"].changed) == (3, 1)
    assert summary.by_type["Encounter"].new == 1
    problems = {p.location: p for p in summary.problems}
    assert set(problems) == {"entry 2", "entry 4"}
    assert "entry 0" in problems["entry 2"].error
    assert "fullUrl" in problems["entry 2"].error
    assert "entry 3" in problems["entry 4"].error
    assert "Patient/p9" in problems["entry 4"].error
    with engine.connect() as conn:
        aaa = conn.execute(
            select(raw_resources.c.content).where(raw_resources.c.resource_id == "aaa")
        ).scalars()
        assert [orjson.loads(content)["gender"] for content in aaa] == ["male"]
        kept = conn.execute(select(quarantine)).mappings().all()
    assert {(e["location"], e["resource_type"], e["resource_id"]) for e in kept} == {
        ("entry 2", "Patient", "aaa"),
        ("entry 4", "Patient", "p9"),
    }
    # Quarantined with what was sent.
    assert sorted(orjson.loads(e["content"])["gender"] for e in kept) == ["female", "other"]


def nested_extensions(depth: int) -> dict[str, object]:
    extension: dict[str, object] = {"url": "http://example.org/leaf", "valueString": "x"}
    for _ in range(depth - 1):
        extension = {"url": "http://example.org/node", "extension": [extension]}
    return {"resourceType": "Patient", "id": "deep", "extension": [extension]}


@pytest.mark.parametrize("processes", [0, 2])
def test_a_resource_nested_too_deep_is_quarantined_and_the_rest_of_the_file_imports(
    engine: Engine, pack: RulePack, tmp_path: Path, processes: int
) -> None:
    import json

    from integration.ingest.pipeline import IngestPipeline

    deep = nested_extensions(150)
    lines = [orjson.dumps(patient(f"p{n}")).decode() for n in range(60)]
    lines[20] = json.dumps(deep)  # deeper than orjson writes (255 levels)
    lines[40] = json.dumps(
        {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": deep}]}
    )
    data = tmp_path / "deep.ndjson"
    data.write_text("\n".join(lines) + "\n", encoding="utf-8")
    summary = IngestPipeline(engine, pack, "deep", 1 << 20, batch_size=10, processes=processes).run(
        [data]
    )
    assert summary.by_type["Patient"].new == 58
    assert summary.by_type["Patient"].quarantined == 2
    assert [p.location for p in summary.problems] == ["line 21", "line 41, entry 0"]
    for problem in summary.problems:
        assert (problem.fhir_path or "").startswith("Patient.extension[0].extension[0]")
        assert "64" in problem.error
        assert "JOURNEY_MAX_RESOURCE_DEPTH" in problem.error
    with engine.connect() as conn:
        contents = conn.execute(select(quarantine.c.content)).scalars().all()
    assert all(content.startswith('{"resourceType"') for content in contents)


def test_nul_characters_are_quarantined_with_their_path_not_a_crash(
    engine: Engine, import_files: ImportFn, pack: RulePack, tmp_path: Path
) -> None:
    from integration.ingest.pipeline import IngestPipeline

    path = write_ndjson(
        tmp_path / "nul.ndjson",
        patient("p1", name=[{"family": "Nu\x00ll"}]),
        patient("p\x002"),
        encounter("e1", "p\x001"),
        patient("p3", **{"gen\x00der": "female"}),
        patient("p4"),
    )
    for source, validate in (("checked", True), ("trusted", False)):
        summary = IngestPipeline(engine, pack, source, 1 << 20, validate=validate).run([path])
        assert summary.total("new") == 1, source
        assert summary.total("quarantined") == 4, source
        paths = [p.fhir_path for p in summary.problems]
        assert paths == [
            "Patient.name[0].family",
            "Patient.id",
            "Encounter.subject.reference",
            "Patient",
        ]
    with engine.connect() as conn:
        rows = conn.execute(select(quarantine)).mappings().all()
    assert len(rows) == 8
    assert not any("\x00" in str(value) for row in rows for value in row.values())


def test_validation_workers_outlive_the_thread_that_started_them() -> None:
    """Workers watch for their parent process's death; the kernel also signals them when
    the thread that started them ends (a sync's download thread), which must not stop them."""
    import threading
    import time

    from integration.ingest.intake import Intake
    from integration.ingest.pool import IntakePool

    pool = IntakePool(1, validate=True, max_depth=64)
    try:
        starter = threading.Thread(
            target=lambda: pool.submit([(orjson.dumps(patient("a")), None)]).result(timeout=60)
        )
        starter.start()
        starter.join()
        time.sleep(1.0)  # the starter thread's end has been signalled by now
        [results] = IntakePool.results(pool.submit([(orjson.dumps(patient("b")), None)]))
        assert isinstance(results, Intake)
        assert results.resource_id == "b"
    finally:
        pool.close()
