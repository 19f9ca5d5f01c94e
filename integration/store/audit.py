"""The audit trail as stored: appended in batches, read by person and time, pruned by
age."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, delete, select

from integration.store.schema import audit_events
from integration.store.upsert import execute_many

c = audit_events.c


def append(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    execute_many(conn, audit_events.insert(), rows)


def search(
    conn: Connection,
    person_id: str | None = None,
    since: str | None = None,
    until: str | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Newest first."""
    query = select(audit_events).order_by(c.recorded.desc(), c.id.desc()).limit(limit)
    if person_id is not None:
        query = query.where(c.person_id == person_id)
    if since is not None:
        query = query.where(c.recorded >= since)
    if until is not None:
        query = query.where(c.recorded < until)
    # Plain str keys: a column's name may come back as SQLAlchemy's str subclass.
    return [{str(k): v for k, v in row._mapping.items()} for row in conn.execute(query)]


def prune(conn: Connection, before: str) -> int:
    return max(conn.execute(delete(audit_events).where(c.recorded < before)).rowcount, 0)
