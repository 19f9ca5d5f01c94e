"""Populations in the store: the member rosters sources read, and a population as a
query condition, so that a limited client's reads never touch anyone else's rows."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Connection, delete, exists, func, or_, select

from integration.access.population import Population
from integration.store.keys import in_keys
from integration.store.schema import (
    current_resources,
    people,
    person_links,
    roster_departures,
    roster_members,
)
from integration.store.upsert import execute_many, insert_ignore

# A condition a query's WHERE takes (what `integration.access.visibility` builds).
Condition = ColumnElement[bool]


def replace_roster(conn: Connection, source: str, patient_ids: Sequence[str]) -> RosterChange:
    """The source's roster as just read: members who left it leave the population.
    Returns who left and who joined since the last read (none on the first)."""
    before = set(
        conn.execute(
            select(roster_members.c.patient_id).where(roster_members.c.source == source)
        ).scalars()
    )
    now = set(patient_ids)
    conn.execute(delete(roster_members).where(roster_members.c.source == source))
    execute_many(
        conn,
        roster_members.insert(),
        [{"source": source, "patient_id": patient_id} for patient_id in sorted(now)],
    )
    return RosterChange(len(before), sorted(before - now), sorted(now - before))


@dataclass(frozen=True, slots=True)
class RosterChange:
    members_before: int
    left: list[str]
    joined: list[str]


def roster_members_of(conn: Connection, source: str) -> int:
    """How many members the source's roster had when last read."""
    c = roster_members.c
    return int(
        conn.execute(
            select(func.count()).select_from(roster_members).where(c.source == source)
        ).scalar_one()
    )


def retire_members(conn: Connection, source: str, patient_ids: Sequence[str], now: str) -> None:
    """These members left a roster whose source retires leavers: out of the journey."""
    insert_ignore(
        conn,
        roster_departures,
        [{"source": source, "patient_id": p, "left_at": now} for p in patient_ids],
        keys=("source", "patient_id"),
    )


def restore_members(conn: Connection, source: str, patient_ids: Sequence[str]) -> list[str]:
    """These members are on the roster again: those that had been retired, returned."""
    c = roster_departures.c
    back: list[str] = []
    for at in range(0, len(patient_ids), 500):
        part = list(patient_ids[at : at + 500])
        back += conn.execute(
            select(c.patient_id).where(c.source == source, c.patient_id.in_(part))
        ).scalars()
        conn.execute(delete(roster_departures).where(c.source == source, c.patient_id.in_(part)))
    return back


def of_retired_members(conn: Connection, keys: Sequence[tuple[str, str, str]]) -> set[Any]:
    """Those of these current resources (source, type, id) about a member retired for
    leaving their source's roster. One indexed join; nothing when no one is retired."""
    if not keys:
        return set()
    cur, gone = current_resources.c, roster_departures.c
    rows = conn.execute(
        select(cur.source, cur.resource_type, cur.resource_id)
        .join(
            roster_departures,
            (gone.source == cur.source) & (gone.patient_id == cur.subject_id),
        )
        .where(in_keys((cur.source, cur.resource_type, cur.resource_id), keys))
    )
    return {(row.source, row.resource_type, row.resource_id) for row in rows}


def roster_counts(conn: Connection) -> dict[str, tuple[int, int]]:
    """Per source: members on its roster as last read, members retired for leaving it."""
    counts: dict[str, list[int]] = {}
    for table, at in ((roster_members, 0), (roster_departures, 1)):
        for source, n in conn.execute(
            select(table.c.source, func.count()).group_by(table.c.source)
        ):
            counts.setdefault(source, [0, 0])[at] = int(n)
    return {source: (n[0], n[1]) for source, n in counts.items()}


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
