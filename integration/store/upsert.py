"""INSERT ... ON CONFLICT for both backends, so no store query is SQLite-only.

SQLite and PostgreSQL spell upserts the same way; SQLAlchemy just keeps their
constructs in separate dialect modules. This picks the right one.

Batches go to the driver's executemany with SQLAlchemy's per-row parameter
processing skipped (`execute_many`): every store column is text, integer or
boolean, which both drivers take as they are, and that processing was a
third of the time a 1,000-row batch spent in the store.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from operator import itemgetter
from typing import Any

from sqlalchemy import ColumnElement, Connection, Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import ClauseElement


def insert_statement(conn: Connection, table: Table) -> Any:
    """The dialect's INSERT, which has on_conflict_do_nothing / _do_update."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    if conn.dialect.name == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(f"no upsert for the {conn.dialect.name} dialect")


def upsert_statement(
    conn: Connection,
    table: Table,
    keys: Sequence[str],
    update: Sequence[str],
    where: Callable[[Any], ColumnElement[bool]] | None = None,
    computed: dict[str, Any] | None = None,
) -> Any:
    """INSERT; on a key conflict update the `update` columns (only where `where(excluded)`).
    `computed` gives columns as SQL expressions (which may read a row's other values)."""
    stmt = insert_statement(conn, table)
    if computed:
        stmt = stmt.values(computed)
    excluded = stmt.excluded
    return stmt.on_conflict_do_update(
        index_elements=list(keys),
        set_={name: excluded[name] for name in update},
        where=where(excluded) if where is not None else None,
    )


def upsert(
    conn: Connection,
    table: Table,
    rows: Sequence[dict[str, Any]],
    keys: Sequence[str],
    update: Sequence[str],
    where: Callable[[Any], ColumnElement[bool]] | None = None,
    computed: dict[str, Any] | None = None,
) -> None:
    """Insert rows, updating on a key conflict (see `upsert_statement`)."""
    if rows:
        execute_many(conn, upsert_statement(conn, table, keys, update, where, computed), rows)


# Compiled INSERTs by dialect, statement shape and row keys: a push compiled the same
# five or six statements on every call, about 5% of its CPU. Bounded for safety (a
# process builds a few dozen shapes); cleared, not evicted, when full.
_COMPILED: dict[tuple[Any, ...], tuple[SQLCompiler, bool]] = {}
_COMPILED_MAX = 512


def _compiled(
    conn: Connection, statement: ClauseElement, columns: tuple[str, ...]
) -> tuple[SQLCompiler, dict[str, Any]]:
    """The statement compiled for the connection's dialect (once per shape), and the
    bound values it carries itself (literals in an ON CONFLICT ... WHERE), this
    statement's own, not those of the statement first compiled."""
    cache_key = statement._generate_cache_key()
    if cache_key is not None and cache_key.params:
        # Values given with `.params()` are outside the cache key's bound values:
        # compiled with a cache key, they would be left out (sent as NULL).
        cache_key = None
    key = None if cache_key is None else (conn.dialect, cache_key.key, columns)
    cached = _COMPILED.get(key) if key is not None else None
    if cached is None:
        compiled = statement.compile(
            dialect=conn.dialect, column_keys=list(columns), cache_key=cache_key
        )
        assert isinstance(compiled, SQLCompiler)
        carries = any(name not in columns for name in compiled.params)
        if key is not None:
            if len(_COMPILED) >= _COMPILED_MAX:
                _COMPILED.clear()
            _COMPILED[key] = (compiled, carries)
        cached = (compiled, carries)
    compiled, carries = cached
    if not carries:
        return compiled, {}
    params = compiled.construct_params(
        extracted_parameters=None if cache_key is None else cache_key.bindparams, _check=False
    )
    return compiled, {name: value for name, value in params.items() if name not in columns}


def driver_sql(
    conn: Connection, statement: ClauseElement, rows: Sequence[dict[str, Any]]
) -> tuple[str, list[Any]]:
    """The statement compiled for the connection's dialect, and the rows (all with the
    same keys) as its driver's executemany takes them."""
    compiled, carried = _compiled(conn, statement, tuple(rows[0]))
    given = [{**carried, **row} for row in rows] if carried else rows
    if compiled.positional and compiled.positiontup is not None:
        order = compiled.positiontup
        values = itemgetter(*order) if len(order) > 1 else lambda row: (row[order[0]],)
        return compiled.string, [values(row) for row in given]
    return compiled.string, list(given)


def execute_many(
    conn: Connection, statement: ClauseElement, rows: Sequence[dict[str, Any]]
) -> None:
    """Run an INSERT for many rows (all with the same keys) in one driver executemany.
    The SQL is SQLAlchemy's, compiled once for the connection's dialect."""
    if rows:
        conn.exec_driver_sql(*driver_sql(conn, statement, rows))


def insert_ignore(
    conn: Connection, table: Table, rows: Sequence[dict[str, Any]], keys: Sequence[str]
) -> int:
    """Insert rows, skipping any whose key is already there. Returns rows inserted."""
    if not rows:
        return 0
    stmt = insert_statement(conn, table).on_conflict_do_nothing(index_elements=list(keys))
    result = conn.execute(stmt, list(rows))
    return max(result.rowcount, 0)
