"""Privacy directives as stored, and the people they withhold from a client."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
from sqlalchemy import Connection, and_, delete, or_, select

from integration.store.keys import in_keys
from integration.store.schema import consent_directives, person_links

c = consent_directives.c


def replace(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Each (source, consent_id) as it now reads."""
    keys = [(row["source"], row["consent_id"]) for row in rows]
    if keys:
        conn.execute(delete(consent_directives).where(in_keys((c.source, c.consent_id), keys)))
        conn.execute(consent_directives.insert(), list(rows))


def withheld_people(conn: Connection, client_id: str, today: str) -> set[str]:
    """The people whose data a directive withholds from this client today (a person is
    withheld when any of their source Patients is)."""
    rows = conn.execute(
        select(person_links.c.person_id, c.recipients)
        .join(
            person_links,
            and_(person_links.c.source == c.source, person_links.c.patient_id == c.patient_id),
        )
        .where(
            c.withholds.is_(True),
            or_(c.period_start.is_(None), c.period_start <= today + "T99"),
            or_(c.period_end.is_(None), c.period_end >= today),
        )
    )
    withheld = set()
    for person, recipients in rows:
        if recipients is None or client_id in orjson.loads(recipients):
            withheld.add(person)
    return withheld
