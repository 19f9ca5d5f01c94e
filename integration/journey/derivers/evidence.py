"""Evidence types (Procedure, DiagnosticReport, medications, Immunization): no record of
their own. Each keeps which Encounter it names, so that an Encounter's record reads it
set-based and is derived again when evidence about it arrives or changes."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence

from sqlalchemy import Connection

from integration.journey.derivers.base import CurrentResource, JourneyUpdate, ResourceKey
from integration.store.derivation import current_of_subjects, flag_for_derivation
from integration.store.resource_links import replace_encounter_evidence
from mappings.evidence import Evidence, encounter_named, read_evidence
from mappings.fhir_values import reference_id
from mappings.rulepack import RulePack


def derive(
    conn: Connection, batch: list[CurrentResource], _pack: RulePack, _summary: JourneyUpdate
) -> list[ResourceKey]:
    return link_to_encounters(conn, batch)


def link_to_encounters(conn: Connection, batch: Sequence[CurrentResource]) -> list[ResourceKey]:
    """Record the Encounter each resource names and put those Encounters back on the
    queue; returns them (a scoped run derives them too)."""
    by_type: dict[str, list[CurrentResource]] = {}
    for resource in batch:
        by_type.setdefault(resource.resource_type, []).append(resource)
    flagged: list[ResourceKey] = []
    for resource_type, resources in by_type.items():
        naming = [
            (r.source, r.resource_id, encounter)
            for r in resources
            if (encounter := encounter_named(r.resource_type, r.content))
        ]
        replace_encounter_evidence(
            conn, resource_type, [(r.source, r.resource_id) for r in resources], naming
        )
        by_source: dict[str, list[str]] = {}
        for source, _, encounter in naming:
            by_source.setdefault(source, []).append(encounter)
        for source, encounters in by_source.items():
            flag_for_derivation(conn, source, "Encounter", encounters)
            flagged.extend((source, "Encounter", e) for e in dict.fromkeys(encounters))
    return flagged


def patients_conditions(
    conn: Connection, subjects: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], list[Evidence]]:
    """(source, Patient id) -> that patient's Conditions as evidence: what was known
    before a visit or a screen."""
    wanted = sorted(set(subjects))
    found: dict[tuple[str, str], list[Evidence]] = defaultdict(list)
    if not wanted:
        return found
    for condition in current_of_subjects(conn, "Condition", wanted):
        evidence = read_evidence("Condition", condition.resource_id, condition.content)
        subject = reference_id(condition.content.get("subject"), "Patient")
        if evidence is not None and subject:
            found[(condition.source, subject)].append(evidence)
    return found
