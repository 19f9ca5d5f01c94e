"""Populations in the store: the member rosters sources read, and a population as a
query condition, so that a limited client's reads never touch anyone else's rows."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Connection, delete, exists, func, or_, select

from integration.access.population import Population
from integration.store.schema import people, person_links, roster_members
from integration.store.upsert import execute_many

# A condition a query's WHERE takes (what `integration.access.visibility` builds).
Condition = ColumnElement[bool]


def replace_roster(conn: Connection, source: str, patient_ids: Sequence[str]) -> None:
    """The source's roster as just read: members who left it leave the population."""
    conn.execute(delete(roster_members).where(roster_members.c.source == source))
    execute_many(
        conn,
        roster_members.insert(),
        [{"source": source, "patient_id": patient_id} for patient_id in sorted(set(patient_ids))],
    )


# Aliases: the condition is put on queries that read people and links themselves,
# whose own rows the lookups must not be correlated with.
links = person_links.alias("reach_links")
merged = people.alias("reach_merged")


def in_population(person_id: ColumnElement[Any], population: Population) -> Condition:
    """`person_id` (a column) names someone in the population: a person one of whose
    Patients is in it, or a person merged into one (so that the feed's merge events
    reach the clients that see the survivor).

    A correlated EXISTS from the person's row to its (or its survivor's) links, both
    indexed: a page of 50 people or events costs about 50 index probes, however many
    the population holds. Not an OR of two EXISTS: PostgreSQL then hashed the whole
    population for every page (26 ms against 0.5 ms at 100k people)."""
    kinds: list[ColumnElement[bool]] = []
    if population.sources:
        kinds.append(links.c.source.in_(population.sources))
    if population.rosters:
        kinds.append(
            exists(
                select(roster_members.c.patient_id).where(
                    roster_members.c.source == links.c.source,
                    roster_members.c.patient_id == links.c.patient_id,
                    roster_members.c.source.in_(population.rosters),
                )
            )
        )
    survivor_or_self = func.coalesce(merged.c.merged_into, merged.c.id)
    return exists(
        select(links.c.patient_id)
        .select_from(merged.join(links, links.c.person_id == survivor_or_self))
        .where(merged.c.id == person_id, or_(*kinds))
        .correlate_except(merged, links)
    )
