"""INSERT ... ON CONFLICT for both backends, so no store query is SQLite-only.

SQLite and PostgreSQL spell upserts the same way; SQLAlchemy just keeps their
constructs in separate dialect modules. This picks the right one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import ColumnElement, Connection, Table
from sqlalchemy.dialects import postgresql, sqlite


def _insert(conn: Connection, table: Table) -> Any:
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    if conn.dialect.name == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(f"no upsert for the {conn.dialect.name} dialect")


def upsert(
    conn: Connection,
    table: Table,
    rows: Sequence[dict[str, Any]],
    keys: Sequence[str],
    update: Sequence[str],
    where: Callable[[Any], ColumnElement[bool]] | None = None,
) -> None:
    """Insert rows; on a key conflict update the `update` columns (only where `where(excluded)`)."""
    if not rows:
        return
    stmt = _insert(conn, table)
    excluded = stmt.excluded
    stmt = stmt.on_conflict_do_update(
        index_elements=list(keys),
        set_={name: excluded[name] for name in update},
        where=where(excluded) if where is not None else None,
    )
    conn.execute(stmt, list(rows))


def insert_ignore(
    conn: Connection, table: Table, rows: Sequence[dict[str, Any]], keys: Sequence[str]
) -> int:
    """Insert rows, skipping any whose key is already there. Returns rows inserted."""
    if not rows:
        return 0
    stmt = _insert(conn, table).on_conflict_do_nothing(index_elements=list(keys))
    result = conn.execute(stmt, list(rows))
    return max(result.rowcount, 0)
