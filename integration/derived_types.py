"""The registry of derived resource types: the one place a type is declared derived.

Each entry says what a resource type becomes in the journey, whether its
`subject` names the Patient it belongs to, whether a source pulls it when its
config names no types, and which function derives a batch of it. The type lists
the stages use are generated from here where each is needed: the store's
`DERIVED_TYPES` (flagged for derivation), the journey update's order and
`RECORD_TYPES`, intake's `SUBJECT_TYPES`, the sources' `DEFAULT_TYPES` and the
push endpoint's `JOURNEY_TYPES`.

Declarations only: this module imports nothing of ours, so ingest, sources and the
store read it without loading the derivation code. The function is named by its
dotted path and imported by the journey update when it runs
(`integration.journey.derivers.resolve`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum


class Becomes(StrEnum):
    """What a derived resource is in the journey zone."""

    PERSON = "person"  # linked into a person (identity)
    JOB_RECORDS = "job records"  # one or more job records, each with its reason
    EVIDENCE = "evidence"  # read when another type is derived (a Condition's codes)
    DIRECTIVE = "directive"  # governs who may read the journey (a privacy Consent)


@dataclass(frozen=True, slots=True)
class DerivedType:
    resource_type: str
    becomes: Becomes
    # "package.module:function", a `Derive` (integration/journey/derivers/base.py).
    derive: str
    # Its `subject` is the Patient it belongs to (stored as subject_id).
    subject: bool = False
    # The element naming that Patient, where it is not `subject` (a claim's `patient`).
    subject_element: str = "subject"
    # Pulled by a source whose config lists no resource types.
    pulled_by_default: bool = False


# In derivation order: a type comes after those its derivation reads (an Encounter's
# record reads its Conditions' codes; every record needs its Patient linked first).
DERIVED: tuple[DerivedType, ...] = (
    DerivedType(
        "Patient",
        Becomes.PERSON,
        "integration.journey.derivers.patient:derive",
        pulled_by_default=True,
    ),
    # Evidence an Encounter's record reads: what names the Encounter (`encounter`), and
    # for Conditions also those it names. Each re-flags the Encounters it concerns.
    DerivedType(
        "Condition",
        Becomes.EVIDENCE,
        "integration.journey.derivers.condition:derive",
        subject=True,
    ),
    *(
        DerivedType(name, Becomes.EVIDENCE, "integration.journey.derivers.evidence:derive", True)
        for name in (
            "Procedure",
            "DiagnosticReport",
            "MedicationRequest",
            "MedicationAdministration",
            "Immunization",
        )
    ),
    # An instrument's total sent as an Observation (PHQ-9 44261-6, GAD-7 70274-6) is a
    # scored record like a response; every Observation is also evidence for its Encounter.
    DerivedType(
        "Observation",
        Becomes.JOB_RECORDS,
        "integration.journey.derivers.questionnaire_response:derive",
        subject=True,
    ),
    DerivedType(
        "Encounter",
        Becomes.JOB_RECORDS,
        "integration.journey.derivers.encounter:derive",
        subject=True,
        pulled_by_default=True,
    ),
    DerivedType(
        "QuestionnaireResponse",
        Becomes.JOB_RECORDS,
        "integration.journey.derivers.questionnaire_response:derive",
        subject=True,
        pulled_by_default=True,
    ),
    # Payers' claims (CARIN Blue Button): after the Encounters they may bill for.
    DerivedType(
        "ExplanationOfBenefit",
        Becomes.JOB_RECORDS,
        "integration.journey.derivers.claim:derive",
        subject=True,
        subject_element="patient",
    ),
    DerivedType(
        "Claim",
        Becomes.JOB_RECORDS,
        "integration.journey.derivers.claim:derive",
        subject=True,
        subject_element="patient",
    ),
    # A patient's privacy Consent: withholds their journey from some or all clients.
    DerivedType(
        "Consent",
        Becomes.DIRECTIVE,
        "integration.journey.derivers.consent:derive",
        subject=True,
        subject_element="patient",
    ),
)

# Kept raw, never derived, yet filed under the Patient their `subject` names.
RAW_SUBJECT_TYPES: tuple[str, ...] = ()


def derived_types(registry: Sequence[DerivedType] = DERIVED) -> tuple[str, ...]:
    """Every derived type, in derivation order."""
    return tuple(d.resource_type for d in registry)


def record_types(registry: Sequence[DerivedType] = DERIVED) -> tuple[str, ...]:
    """The types that become job records (a failing one becomes an `unclassified` record)."""
    return tuple(d.resource_type for d in registry if d.becomes is Becomes.JOB_RECORDS)


def journey_types(registry: Sequence[DerivedType] = DERIVED) -> tuple[str, ...]:
    """The types mapped into the journey itself: people and job records, not evidence."""
    placed = (Becomes.PERSON, Becomes.JOB_RECORDS)
    return tuple(d.resource_type for d in registry if d.becomes in placed)


def default_types(registry: Sequence[DerivedType] = DERIVED) -> tuple[str, ...]:
    return tuple(d.resource_type for d in registry if d.pulled_by_default)


def subject_types(registry: Sequence[DerivedType] = DERIVED) -> frozenset[str]:
    return frozenset(d.resource_type for d in registry if d.subject) | frozenset(RAW_SUBJECT_TYPES)


def subject_elements(registry: Sequence[DerivedType] = DERIVED) -> dict[str, str]:
    """Type -> the element that names the Patient it belongs to."""
    found = dict.fromkeys(RAW_SUBJECT_TYPES, "subject")
    found.update({d.resource_type: d.subject_element for d in registry if d.subject})
    return found


def _check(registry: Sequence[DerivedType]) -> None:
    names = derived_types(registry)
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise ValueError(f"derived types declared twice: {', '.join(twice)}")


_check(DERIVED)
