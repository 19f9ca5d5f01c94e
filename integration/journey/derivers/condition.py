"""Conditions: evidence an Encounter's record reads (its concerns, and whether they were
known before), no record of their own. A Condition re-flags the Encounters that name
it and the one it names."""

from __future__ import annotations

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
    for condition in batch:
        naming = encounters_naming(conn, condition.source, condition.resource_id)
        if not naming:
            continue
        flag_for_derivation(conn, condition.source, "Encounter", naming)
        flagged.extend((condition.source, "Encounter", eid) for eid in naming)
    return flagged
