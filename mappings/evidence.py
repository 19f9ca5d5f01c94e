"""Evidence: what the resources around a care event say happened at it.

US Core links evidence to an Encounter from the other side (`Condition.encounter`,
`Procedure.encounter`, `Observation.encounter`, `DiagnosticReport.encounter`,
`MedicationRequest.encounter`, `Immunization.encounter`), and a patient's earlier
Conditions say whether a concern was already known. These readers turn such
resources into `Evidence`: its codes, when it was recorded, and in which rule
element it counts. Withdrawn evidence (entered in error, refuted, not done) is no
evidence and reads as None.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from mappings.dates import instant_iso, parse_interval
from mappings.errors import FhirDateError
from mappings.fhir_values import Code, concept_codes, concepts_codes, reference_id

# Resource type -> the rule element its codes count in, and the element holding them.
EVIDENCE_ELEMENTS: dict[str, tuple[str, str]] = {
    "Condition": ("condition", "code"),
    "Procedure": ("procedure", "code"),
    "DiagnosticReport": ("report", "code"),
    "Observation": ("report", "code"),
    "MedicationRequest": ("medication", "medicationCodeableConcept"),
    "MedicationAdministration": ("medication", "medicationCodeableConcept"),
    "MedicationDispense": ("medication", "medicationCodeableConcept"),
    "Immunization": ("immunization", "vaccineCode"),
}
# When each kind of evidence happened or was recorded, first present wins.
_TIMES: dict[str, tuple[str, ...]] = {
    "Condition": ("onsetDateTime", "onsetPeriod.start", "recordedDate"),
    "Procedure": ("performedDateTime", "performedPeriod.start"),
    "DiagnosticReport": ("effectiveDateTime", "effectivePeriod.start", "issued"),
    "Observation": ("effectiveDateTime", "effectivePeriod.start", "issued"),
    "MedicationRequest": ("authoredOn",),
    "MedicationAdministration": ("effectiveDateTime", "effectivePeriod.start"),
    "MedicationDispense": ("whenHandedOver", "whenPrepared"),
    "Immunization": ("occurrenceDateTime", "recorded"),
}
# When a Condition ended (abatement).
_ENDS: dict[str, tuple[str, ...]] = {
    "Condition": ("abatementDateTime", "abatementPeriod.end", "abatementPeriod.start")
}
_WITHDRAWN_STATUS = frozenset({"entered-in-error", "not-done", "cancelled", "stopped"})
# Observations that are part of every visit or not results: no evidence of a job.
_ROUTINE_CATEGORIES = frozenset({"vital-signs", "social-history", "survey", "activity"})
# R4 names the Encounter `encounter` on most types, `context` on these.
_ENCOUNTER_ELEMENT = {"MedicationAdministration": "context", "MedicationDispense": "context"}
_WITHDRAWN_VERIFICATION = frozenset({"entered-in-error", "refuted"})


class Evidence(NamedTuple):
    """One resource read as evidence. A named tuple: one is made for every Condition and
    every resource naming an Encounter, and a frozen dataclass sets each field through
    object.__setattr__."""

    resource_type: str
    resource_id: str
    element: str  # the rule element it counts in (condition, procedure, ...)
    codes: tuple[Code, ...]
    recorded: str | None  # ISO UTC start, when known
    encounter_id: str | None  # the Encounter it names
    # When a Condition ended (abatement): an earlier episode that ended is not a
    # concern still known at a later visit.
    ended: str | None = None

    @property
    def label(self) -> str:
        return f"{self.resource_type}/{self.resource_id}"


def read_evidence(
    resource_type: str, resource_id: str, resource: Mapping[str, Any]
) -> Evidence | None:
    """`resource` as evidence, or None when it is no evidence (withdrawn, or a type
    that says nothing about a job)."""
    placed = EVIDENCE_ELEMENTS.get(resource_type)
    if placed is None or _withdrawn(resource):
        return None
    if resource_type == "Observation" and any(
        code.code in _ROUTINE_CATEGORIES for code in concepts_codes(resource.get("category"))
    ):
        return None
    element, code_element = placed
    return Evidence(
        resource_type=resource_type,
        resource_id=resource_id,
        element=element,
        codes=tuple(concept_codes(resource.get(code_element))),
        recorded=_time(resource_type, resource, _TIMES.get(resource_type, ())),
        encounter_id=encounter_named(resource_type, resource),
        ended=_time(resource_type, resource, _ENDS.get(resource_type, ())),
    )


def encounter_named(resource_type: str, resource: Mapping[str, Any]) -> str | None:
    """The id of the Encounter a resource names as the one it belongs to."""
    element = _ENCOUNTER_ELEMENT.get(resource_type, "encounter")
    return reference_id(resource.get(element), "Encounter")


def _withdrawn(resource: Mapping[str, Any]) -> bool:
    if resource.get("status") in _WITHDRAWN_STATUS:
        return True
    verification = resource.get("verificationStatus")
    return any(code.code in _WITHDRAWN_VERIFICATION for code in concept_codes(verification))


def _time(resource_type: str, resource: Mapping[str, Any], paths: tuple[str, ...]) -> str | None:
    """The first of these date elements present, as ISO UTC; None if none is readable."""
    for path in paths:
        value: Any = resource
        for key in _KEYS[path]:
            value = value.get(key) if isinstance(value, dict) else None
        if isinstance(value, str):
            common = instant_iso(value)
            if common is not None:  # the common shape, without building an interval
                return common
            try:
                return parse_interval(value, f"{resource_type}.{path}").start_iso
            except FhirDateError:
                return None
    return None


# Each path of _TIMES and _ENDS split once, not per resource.
_KEYS = {
    path: tuple(path.split(".")) for paths in (*_TIMES.values(), *_ENDS.values()) for path in paths
}
