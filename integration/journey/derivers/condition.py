"""Conditions: evidence an Encounter's record reads (its concerns, and whether they were
known before), no record of their own. A Condition re-flags the Encounters that name
it and the one it names."""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy import Connection

from integration.journey.derivers.base import CurrentResource, JourneyUpdate, ResourceKey
from integration.journey.derivers.evidence import link_to_encounters
from integration.store.derivation import flag_for_derivation
from integration.store.resource_links import encounters_naming
from mappings.rulepack import RulePack


def derive(
    conn: Connection, batch: list[CurrentResource], _pack: RulePack, _summary: JourneyUpdate
) -> list[ResourceKey]:
    # A Condition may arrive after the Encounter it names or that names it: re-derive
    # those Encounters.
    flagged: list[ResourceKey] = link_to_encounters(conn, batch)
    naming: dict[str, list[str]] = defaultdict(list)
    for source, encounter_id in encounters_naming(conn, [(c.source, c.resource_id) for c in batch]):
        naming[source].append(encounter_id)
    for source, encounters in naming.items():
        flag_for_derivation(conn, source, "Encounter", encounters)
        flagged.extend((source, "Encounter", eid) for eid in encounters)
    return flagged
