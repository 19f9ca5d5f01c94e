"""Populations in the store: the member rosters sources read, and a population as a
query condition, so that a limited client's reads never touch anyone else's rows."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Connection, and_, delete, select, union

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


def _linked_people(population: Population) -> Any:
    """The ids of the people one of whose Patients is in the population."""
    parts = []
    if population.sources:
        parts.append(
            select(person_links.c.person_id).where(person_links.c.source.in_(population.sources))
        )
    if population.rosters:
        parts.append(
            select(person_links.c.person_id)
            .join(
                roster_members,
                and_(
                    roster_members.c.source == person_links.c.source,
                    roster_members.c.patient_id == person_links.c.patient_id,
                ),
            )
            .where(roster_members.c.source.in_(population.rosters))
        )
    return parts[0] if len(parts) == 1 else union(*parts)


def in_population(person_id: ColumnElement[Any], population: Population) -> ColumnElement[bool]:
    """`person_id` (a column) names someone in the population: a person whose Patients
    are in it, or a person merged into one (so that the feed's merge events reach the
    clients that see the survivor)."""
    linked = _linked_people(population).subquery()
    merged = select(people.c.id).where(people.c.merged_into.in_(select(linked.c.person_id)))
    return person_id.in_(union(select(linked.c.person_id), merged))
