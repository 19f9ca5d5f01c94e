"""The lists of resource type names each stage uses, and what they were before the
registry of derived types generated them: a change to any of them is deliberate."""

from __future__ import annotations

from integration.ingest.intake import SUBJECT_TYPES
from integration.journey.update import RECORD_TYPES
from integration.push.capability import JOURNEY_TYPES, KEPT_RAW_TYPES, capability_statement
from integration.sources import DEFAULT_TYPES
from integration.store.raw import DERIVED_TYPES


def test_the_type_lists_keep_their_values_and_order() -> None:
    assert DERIVED_TYPES == ("Patient", "Condition", "Encounter", "QuestionnaireResponse")
    assert RECORD_TYPES == ("Encounter", "QuestionnaireResponse")
    assert isinstance(SUBJECT_TYPES, frozenset)
    assert sorted(SUBJECT_TYPES) == [
        "Condition",
        "Encounter",
        "Observation",
        "QuestionnaireResponse",
    ]
    assert DEFAULT_TYPES == ("Patient", "Encounter", "QuestionnaireResponse")
    assert JOURNEY_TYPES == ("Patient", "Encounter", "QuestionnaireResponse")
    assert KEPT_RAW_TYPES == (
        "Condition",
        "Observation",
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


def test_the_capability_statement_declares_the_same_types() -> None:
    [rest] = capability_statement("http://x/fhir", "0", 10)["rest"]
    assert [r["type"] for r in rest["resource"]] == [
        "Patient",
        "Encounter",
        "QuestionnaireResponse",
        "Condition",
        "Observation",
        "Practitioner",
        "PractitionerRole",
        "Organization",
        "Location",
        "MedicationRequest",
        "DiagnosticReport",
        "Procedure",
        "AllergyIntolerance",
        "Immunization",
    ]
    assert (
        "source (the API key names it). Patient, Encounter and QuestionnaireResponse are "
        in (rest["documentation"])
    )
