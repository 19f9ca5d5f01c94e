"""Conditions: evidence an Encounter's record reads (its concern codes), no record of
their own. A Condition re-flags the Encounters that name it."""

from __future__ import annotations

from sqlalchemy import Connection, select, update

from integration.journey.derivers.base import CurrentResource, JourneyUpdate, ResourceKey
from integration.store.schema import current_resources, resource_links
from mappings.rulepack import RulePack


def derive(
    conn: Connection, batch: list[CurrentResource], _pack: RulePack, _summary: JourneyUpdate
) -> list[ResourceKey]:
    # A Condition may arrive after the Encounter that names it: re-derive those Encounters.
    flagged: list[ResourceKey] = []
    for condition in batch:
        naming = (
            conn.execute(
                select(resource_links.c.from_id).where(
                    resource_links.c.source == condition.source,
                    resource_links.c.from_type == "Encounter",
                    resource_links.c.to_type == "Condition",
                    resource_links.c.to_id == condition.resource_id,
                )
            )
            .scalars()
            .all()
        )
        if not naming:
            continue
        conn.execute(
            update(current_resources)
            .where(
                current_resources.c.source == condition.source,
                current_resources.c.resource_type == "Encounter",
                current_resources.c.resource_id.in_(naming),
            )
            .values(needs_derive=True)
        )
        flagged.extend((condition.source, "Encounter", eid) for eid in naming)
    return flagged
