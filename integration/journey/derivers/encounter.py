"""Encounters: one job record each, read with their evidence: the Conditions they name,
the resources that name them (Conditions, Procedures, DiagnosticReports, Observations,
medications, immunizations) and the patient's Conditions, all loaded set-based per
batch. The links are kept, so evidence arriving later re-derives them."""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy import Connection

from integration.journey.derivers.base import (
    CurrentResource,
    JourneyUpdate,
    ResourceKey,
    write_records,
)
from integration.journey.derivers.evidence import patients_conditions
from integration.store.derivation import current_conditions
from integration.store.resource_links import evidence_naming, replace_encounter_conditions
from mappings.encounter import EncounterContext, map_encounter, referenced_condition_ids
from mappings.evidence import Evidence, read_evidence
from mappings.failed import describe_failure
from mappings.fhir_values import reference_id
from mappings.model import JobRecord
from mappings.rulepack import RulePack


def derive(
    conn: Connection, batch: list[CurrentResource], pack: RulePack, summary: JourneyUpdate
) -> list[ResourceKey]:
    by_source: dict[str, list[CurrentResource]] = defaultdict(list)
    for encounter in batch:
        by_source[encounter.source].append(encounter)
    linked = _linked_evidence(conn, batch)
    history = patients_conditions(
        conn, [(e.source, s) for e in batch if (s := _subject(e)) is not None]
    )
    records: list[JobRecord] = []
    failed: list[tuple[CurrentResource, str]] = []
    links: list[tuple[str, str, str]] = []
    for source, encounters in by_source.items():
        named = _named_conditions(conn, source, encounters, history)
        for encounter in encounters:
            referenced = referenced_condition_ids(encounter.content)
            subject = _subject(encounter)
            context = EncounterContext(
                conditions={cid: named[cid] for cid in referenced if cid in named},
                linked=linked.get((source, encounter.resource_id), ()),
                history=history.get((source, subject), ()) if subject else (),
            )
            try:
                records.append(map_encounter(encounter.content, encounter.ref, pack, context))
            except Exception as exc:  # this Encounter only: the others map on
                failed.append((encounter, describe_failure(exc)))
            links.extend((source, encounter.resource_id, cid) for cid in referenced)
    replace_encounter_conditions(conn, [(e.source, e.resource_id) for e in batch], links)
    write_records(conn, batch, records, failed, pack, summary)
    return []


def _linked_evidence(
    conn: Connection, batch: list[CurrentResource]
) -> dict[tuple[str, str], list[Evidence]]:
    """(source, Encounter id) -> the evidence naming it."""
    found: dict[tuple[str, str], list[Evidence]] = defaultdict(list)
    for source, encounter_id, resource_type, content in evidence_naming(
        conn, [(e.source, e.resource_id) for e in batch]
    ):
        evidence = read_evidence(resource_type, str(content.get("id", "")), content)
        if evidence is not None:
            found[(source, encounter_id)].append(evidence)
    return found


def _named_conditions(
    conn: Connection,
    source: str,
    encounters: list[CurrentResource],
    history: dict[tuple[str, str], list[Evidence]],
) -> dict[str, Evidence]:
    """The Conditions these Encounters name, by id: from their patients' Conditions,
    already read, and from the store only those that belong to no patient of the batch."""
    wanted = {cid for e in encounters for cid in referenced_condition_ids(e.content)}
    named = {
        c.resource_id: c
        for (of_source, _), conditions in history.items()
        if of_source == source
        for c in conditions
        if c.resource_id in wanted
    }
    missing = wanted - named.keys()
    named.update(
        {
            cid: evidence
            for cid, content in current_conditions(conn, source, missing).items()
            if (evidence := read_evidence("Condition", cid, content))
        }
    )
    return named


def _subject(resource: CurrentResource) -> str | None:
    return reference_id(resource.content.get("subject"), "Patient")
