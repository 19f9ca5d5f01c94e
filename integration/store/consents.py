"""Privacy directives as stored, and the people they withhold from a client."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
from sqlalchemy import Connection, delete, or_, select

from integration.store.keys import in_keys
from integration.store.queries import MAX_MERGE_HOPS
from integration.store.schema import consent_directives, people, person_links

c = consent_directives.c


def replace(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Each (source, consent_id) as it now reads."""
    keys = [(row["source"], row["consent_id"]) for row in rows]
    if keys:
        conn.execute(delete(consent_directives).where(in_keys((c.source, c.consent_id), keys)))
        conn.execute(consent_directives.insert(), list(rows))


def withheld_people(conn: Connection, client_id: str, today: str) -> set[str]:
    """The people whose data a directive withholds from this client today (a person is
    withheld when any of their source Patients is).

    The directives first, then their Patients' people: as one join, SQLite (once
    ANALYZEd, with no statistics for an empty directives table) scanned every link in
    the store on every request (7 ms at 100k people)."""
    directives = conn.execute(
        select(c.source, c.patient_id, c.recipients).where(
            c.withholds.is_(True),
            c.patient_id.is_not(None),
            or_(c.period_start.is_(None), c.period_start <= today + "T99"),
            or_(c.period_end.is_(None), c.period_end >= today),
        )
    ).all()
    keys = {
        (row.source, row.patient_id)
        for row in directives
        if row.recipients is None or client_id in orjson.loads(row.recipients)
    }
    if not keys:
        return set()
    links = person_links.c
    withheld = set(
        conn.execute(
            select(links.person_id).where(in_keys((links.source, links.patient_id), keys))
        ).scalars()
    )
    return withheld | _merged_into(conn, withheld)


def _merged_into(conn: Connection, survivors: set[str]) -> set[str]:
    """The ids merged (directly or through others) into these people: the feed keeps
    events written under them, which are the withheld person's too."""
    found: set[str] = set()
    wave = survivors
    for _ in range(MAX_MERGE_HOPS):
        if not wave:
            break
        wave = (
            set(
                conn.execute(
                    select(people.c.id).where(people.c.merged_into.in_(sorted(wave)))
                ).scalars()
            )
            - found
            - survivors
        )
        found |= wave
    return found
