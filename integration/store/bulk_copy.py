"""Storing a batch of new versions with COPY, on PostgreSQL (trusted bulk files).

The row-by-row path (`integration.store.raw`) sends one INSERT per raw row and
one upsert per current row. Here the batch goes to a temporary staging table
in one `COPY ... FROM STDIN`, and two INSERT ... SELECT statements move it
into the real tables in the same transaction, with the very statements'
rules the row-by-row path uses:

- raw_resources: ON CONFLICT (raw_key) DO NOTHING, rows in the batch's order,
  so their ids are handed out in the order the row-by-row path gives them;
- current_resources: ON CONFLICT DO UPDATE where `replaces_current`.

PostgreSQL refuses an INSERT that would update one row twice ("ON CONFLICT DO
UPDATE command cannot affect row a second time"), which a batch holding two
versions of one resource would. Each row has a `round`: the how-manyth version
of its resource in the batch. Round 1 is upserted first, then round 2 and on,
each seeing the one before: the same result as upserting row by row in order.

Which versions are new, and the outcome of each, is decided before this runs
(`raw.write_resources`); this only writes them, and answers that decision's
lookup (`current_raw_keys`) with the batch's keys as three array parameters:
one statement text for every batch, where the row-by-row path's expanding IN
lists spend longer being rendered and parsed than being answered.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import cache
from typing import Any

import psycopg
from sqlalchemy import (
    Boolean,
    Column,
    Connection,
    Engine,
    Integer,
    MetaData,
    Table,
    Text,
    bindparam,
    select,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.schema import CreateTable

from integration.errors import StoreError
from integration.store.current_version import CURRENT_KEYS, CURRENT_UPDATED, replaces_current
from integration.store.schema import current_resources, raw_resources

# Per connection, emptied by every commit (and by a rollback, which takes back
# what the transaction copied in): no clean-up after a batch, even a failed one.
stage = Table(
    "journey_copy_stage",
    MetaData(),
    Column("seq", Integer, nullable=False),
    Column("round", Integer, nullable=False),
    Column("raw_key", Text, nullable=False),
    Column("source", Text, nullable=False),
    Column("resource_type", Text, nullable=False),
    Column("resource_id", Text, nullable=False),
    Column("version_key", Text, nullable=False),
    Column("last_updated", Text),
    Column("origin", Text),
    Column("location", Text),
    Column("content", Text, nullable=False),
    Column("warnings", Text),
    Column("deleted", Boolean, nullable=False),
    Column("subject_id", Text),
    Column("needs_derive", Boolean, nullable=False),
    prefixes=["TEMPORARY"],
    postgresql_on_commit="DELETE ROWS",
)
# The order of a staging row's values (`raw.stage_rows` builds them).
STAGE_COLUMNS = tuple(column.name for column in stage.columns)

_RAW_COLUMNS = (
    "raw_key",
    "source",
    "resource_type",
    "resource_id",
    "version_key",
    "last_updated",
    "origin",
    "location",
    "content",
    "warnings",
    "deleted",
)
_CURRENT_COLUMNS = ("last_updated", "subject_id", "needs_derive", "deleted")


def copy_supported(engine: Engine) -> bool:
    """Can this store take COPY: PostgreSQL through psycopg 3 (the driver we ship)."""
    return engine.dialect.name == "postgresql" and engine.dialect.driver == "psycopg"


def copy_versions(conn: Connection, rows: Sequence[tuple[Any, ...]], received_at: str) -> None:
    """Store new versions: `rows` are staging rows (`STAGE_COLUMNS`), `seq` counting
    from 0 in the batch's order, `round` from 1."""
    if not rows:
        return
    driver = conn.connection.dbapi_connection
    if not isinstance(driver, psycopg.Connection):
        # The pipeline asks for COPY only on psycopg 3 (`copy_supported`).
        raise StoreError(f"COPY needs psycopg 3 on PostgreSQL, not {type(driver).__name__}")
    conn.execute(CreateTable(stage, if_not_exists=True))
    statement = f"COPY {stage.name} ({', '.join(STAGE_COLUMNS)}) FROM STDIN"
    with driver.cursor() as cursor, cursor.copy(statement) as copy:
        for row in rows:
            copy.write_row(row)
    conn.execute(_raw_insert(), {"received_at": received_at})
    upsert = _current_upsert()
    for round_number in range(1, max(row[1] for row in rows) + 1):
        conn.execute(upsert, {"round": round_number})


# (source, type, id) -> the raw key of its current version, for the keys given.
_CURRENT_RAW_KEYS = """
SELECT c.source, c.resource_type, c.resource_id, r.raw_key
FROM unnest(%(sources)s::text[], %(types)s::text[], %(ids)s::text[])
    AS k(source, resource_type, resource_id)
JOIN current_resources c
    ON c.source = k.source AND c.resource_type = k.resource_type AND c.resource_id = k.resource_id
JOIN raw_resources r ON r.id = c.raw_id
"""


def current_raw_keys(
    conn: Connection, identities: Iterable[tuple[str, str, str]]
) -> dict[tuple[str, str, str], str]:
    """(source, type, id) -> the raw key of its current version, for those stored:
    what `raw._current_raw_keys` answers, in one statement on PostgreSQL."""
    keys = set(identities)
    if not keys:
        return {}
    sources, types, ids = (list(column) for column in zip(*keys, strict=True))
    rows = conn.exec_driver_sql(_CURRENT_RAW_KEYS, {"sources": sources, "types": types, "ids": ids})
    return {(row[0], row[1], row[2]): row[3] for row in rows}


@cache
def _raw_insert() -> Any:
    """The staged versions into raw_resources; one another process stored since we
    looked (two syncs of one source) is already there: skipped, as row by row."""
    chosen = select(
        *(stage.c[name] for name in _RAW_COLUMNS),
        bindparam("received_at", type_=Text()),
    ).order_by(stage.c.seq)
    return (
        postgresql.insert(raw_resources)
        .from_select([*_RAW_COLUMNS, "received_at"], chosen)
        .on_conflict_do_nothing(index_elements=["raw_key"])
    )


@cache
def _current_upsert() -> Any:
    """One round of the staged versions into current_resources, each pointing at its
    raw row (found by key, by the unique index, as row by row)."""
    raw_id = (
        select(raw_resources.c.id)
        .where(raw_resources.c.raw_key == stage.c.raw_key)
        .scalar_subquery()
    )
    chosen = (
        select(
            *(stage.c[name] for name in CURRENT_KEYS),
            raw_id,
            *(stage.c[name] for name in _CURRENT_COLUMNS),
        )
        .where(stage.c["round"] == bindparam("round", type_=Integer()))
        .order_by(stage.c.seq)
    )
    insert = postgresql.insert(current_resources)
    excluded = insert.excluded
    columns = [*CURRENT_KEYS, "raw_id", *_CURRENT_COLUMNS]
    return insert.from_select(columns, chosen).on_conflict_do_update(
        index_elements=list(CURRENT_KEYS),
        set_={name: excluded[name] for name in CURRENT_UPDATED},
        where=replaces_current(excluded),
    )
