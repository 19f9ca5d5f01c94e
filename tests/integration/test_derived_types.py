"""The registry of derived types (integration/derived_types.py): the lists of type names
each stage uses are generated from it and keep the values they had before it; a type
added to it is flagged, derived in its turn and listed everywhere it belongs."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Connection, Engine, func, select

import integration.journey.update
import integration.store.raw
from integration.derived_types import (
    DERIVED,
    Becomes,
    DerivedType,
    default_types,
    derived_types,
    journey_types,
    record_types,
    subject_types,
)
from integration.ingest.intake import SUBJECT_ELEMENTS
from integration.journey.derivers import resolve
from integration.journey.derivers.base import (
    RECORD_TYPES,
    CurrentResource,
    JourneyUpdate,
    ResourceKey,
    replace_records,
)
from integration.journey.update import pending_count
from integration.push.capability import JOURNEY_TYPES, KEPT_RAW_TYPES, capability_statement
from integration.sources import DEFAULT_TYPES
from integration.store.raw import DERIVED_TYPES
from integration.store.schema import job_records, person_links
from mappings.fhir_values import reference_id
from mappings.model import Job, JobRecord
from mappings.rulepack import RulePack
from tests.conftest import ImportFn, encounter, patient, write_ndjson

# A type the journey does not derive, registered here as one more entry would be.
TOY = DerivedType(
    "CarePlan",
    Becomes.JOB_RECORDS,
    "tests.integration.test_derived_types:derive_procedures",
    subject=True,
    pulled_by_default=True,
)
# Each batch the toy deriver got, with the number of Patients linked by then.
derived_batches: list[tuple[list[str], int]] = []


# What the push endpoint declares as kept raw today, in its order.
KEPT_RAW_TODAY = (
    "Condition",
    "Practitioner",
    "PractitionerRole",
    "Organization",
    "Location",
    "MedicationRequest",
    "DiagnosticReport",
    "Procedure",
    "AllergyIntolerance",
    "Immunization",
)


def derive_procedures(
    conn: Connection, batch: list[CurrentResource], pack: RulePack, summary: JourneyUpdate
) -> list[ResourceKey]:
    """The toy deriver: every CarePlan is treatment."""
    linked = conn.execute(select(func.count()).select_from(person_links)).scalar_one()
    derived_batches.append(([p.resource_id for p in batch], linked))
    records = [
        JobRecord(
            job=Job.TREAT,
            source_ref=p.ref,
            subject_id=reference_id(p.content.get("subject"), "Patient"),
            occurred_start=p.content.get("performedDateTime"),
            occurred_end=None,
            title="CarePlan",
            setting=None,
            concern_codes=(),
            rule_id="toy-careplan",
            pack_version=pack.version,
            reason="every CarePlan is treatment (test deriver)",
        )
        for p in batch
    ]
    replace_records(conn, batch, records, summary)
    return []


def test_the_type_lists_keep_their_values_and_order() -> None:
    assert DERIVED_TYPES == (
        "Patient",
        "Condition",
        "Procedure",
        "DiagnosticReport",
        "MedicationRequest",
        "MedicationAdministration",
        "Immunization",
        "Observation",
        "Encounter",
        "QuestionnaireResponse",
        "ExplanationOfBenefit",
        "Claim",
        "Consent",
    )
    records = ("Observation", "Encounter", "QuestionnaireResponse", "ExplanationOfBenefit", "Claim")
    assert records == RECORD_TYPES
    assert {
        **dict.fromkeys(DERIVED_TYPES[1:-3], "subject"),
        "ExplanationOfBenefit": "patient",
        "Claim": "patient",
        "Consent": "patient",
    } == SUBJECT_ELEMENTS
    assert DEFAULT_TYPES == ("Patient", "Encounter", "QuestionnaireResponse")
    assert ("Patient", *records) == JOURNEY_TYPES
    assert KEPT_RAW_TYPES == KEPT_RAW_TODAY


def test_the_capability_statement_declares_the_same_types() -> None:
    [rest] = capability_statement("http://x/fhir", "0", 10)["rest"]
    # Then the journey's own FHIR views, for API keys: episodes and subscriptions.
    journey_views = ["AuditEvent", "EpisodeOfCare", "Subscription"]
    assert [r["type"] for r in rest["resource"]] == [
        *JOURNEY_TYPES,
        *KEPT_RAW_TODAY,
        *journey_views,
    ]
    assert (
        "source (the API key names it). Patient, Observation, Encounter, QuestionnaireResponse, "
        "ExplanationOfBenefit and Claim are " in (rest["documentation"])
    )


def test_every_declared_deriver_resolves_to_its_function() -> None:
    for entry in DERIVED:
        module, _, name = entry.derive.partition(":")
        assert resolve(entry).__module__ == module
        assert resolve(entry).__name__ == name


def test_a_deriver_that_cannot_be_loaded_is_named_in_the_error() -> None:
    missing = DerivedType("Procedure", Becomes.EVIDENCE, "integration.journey.derivers:nothing")
    with pytest.raises(LookupError, match="derived type Procedure: cannot load"):
        resolve(missing)


def test_a_registered_type_appears_in_every_list_it_is_flagged_for() -> None:
    registry = (*DERIVED, TOY)
    assert derived_types(registry)[-1] == "CarePlan"  # derived last, after what it reads
    assert record_types(registry) == (*record_types(), "CarePlan")
    assert journey_types(registry) == (*journey_types(), "CarePlan")
    assert default_types(registry) == ("Patient", "Encounter", "QuestionnaireResponse", "CarePlan")
    assert "CarePlan" in subject_types(registry)
    evidence = DerivedType("CarePlan", Becomes.EVIDENCE, TOY.derive)
    assert "CarePlan" not in journey_types((*DERIVED, evidence))
    assert "CarePlan" not in default_types((*DERIVED, evidence))
    assert "CarePlan" not in subject_types((*DERIVED, evidence))


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_a_registered_type_is_derived_by_its_deriver_after_the_types_before_it(
    tmp_path: Path, engine: Engine, import_files: ImportFn, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Registered after import, so the two lists the store and the update read at run
    time are generated again here; an entry in DERIVED is in them from the start."""
    registry = (*DERIVED, TOY)
    monkeypatch.setattr(integration.store.raw, "DERIVED_TYPES", derived_types(registry))
    monkeypatch.setattr(integration.journey.update, "DERIVED", registry)
    derived_batches.clear()
    procedure = {
        "resourceType": "CarePlan",
        "id": "proc-1",
        "status": "active",
        "intent": "plan",
        "subject": {"reference": "Patient/p1"},
    }
    path = write_ndjson(tmp_path / "a.ndjson", patient("p1"), encounter("e1", "p1"), procedure)
    summary = import_files(path)
    assert derived_batches == [(["proc-1"], 1)]  # its Patient was linked before
    assert summary.derive.records_by_job["treat"] == 1
    assert pending_count(engine) == 0
    with engine.connect() as conn:
        rows = conn.execute(select(job_records.c.resource_id, job_records.c.rule_id)).all()
    assert sorted(tuple(row) for row in rows) == [
        ("e1", "encounter.reason.symptom"),
        ("proc-1", "toy-careplan"),
    ]
