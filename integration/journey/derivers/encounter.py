"""Encounters: one job record each, read with the codes of the Conditions they name
(the links are kept, so a Condition arriving later re-derives them)."""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy import Connection

from integration.journey.derivers.base import (
    CurrentResource,
    JourneyUpdate,
    ResourceKey,
    isolate,
    replace_records,
)
from integration.store.derivation import current_conditions
from integration.store.resource_links import replace_encounter_conditions
from mappings.encounter import EncounterContext, map_encounter, referenced_condition_ids
from mappings.failed import describe_failure
from mappings.fhir_values import Code, concept_codes
from mappings.model import JobRecord
from mappings.rulepack import RulePack


def derive(
    conn: Connection, batch: list[CurrentResource], pack: RulePack, summary: JourneyUpdate
) -> list[ResourceKey]:
    by_source: dict[str, list[CurrentResource]] = defaultdict(list)
    for encounter in batch:
        by_source[encounter.source].append(encounter)
    records: list[JobRecord] = []
    failed: list[tuple[CurrentResource, str]] = []
    links: list[tuple[str, str, str]] = []
    for source, encounters in by_source.items():
        wanted = {cid for e in encounters for cid in referenced_condition_ids(e.content)}
        codes = _condition_codes(conn, source, wanted)
        for encounter in encounters:
            referenced = referenced_condition_ids(encounter.content)
            context = EncounterContext({cid: codes[cid] for cid in referenced if cid in codes})
            try:
                records.append(map_encounter(encounter.content, encounter.ref, pack, context))
            except Exception as exc:  # this Encounter only: the others map on
                failed.append((encounter, describe_failure(exc)))
            links.extend((source, encounter.resource_id, cid) for cid in referenced)
    replace_encounter_conditions(conn, [(e.source, e.resource_id) for e in batch], links)
    failing_ids = {id(e) for e, _ in failed}
    replace_records(conn, [e for e in batch if id(e) not in failing_ids], records, summary)
    if failed:
        isolate(conn, failed, pack, summary)
    return []


def _condition_codes(conn: Connection, source: str, ids: set[str]) -> dict[str, list[Code]]:
    if not ids:
        return {}
    return {
        cid: list(concept_codes(content.get("code")))
        for cid, content in current_conditions(conn, source, ids).items()
    }
