"""The derivation queue: current resources flagged `needs_derive`, read with their stored
content, marked done once derived, and flagged again when what they read has changed.

A resource deleted by its source stays on the queue as its tombstone (`deleted`, no
content) until the journey has let it go; every other read here sees live resources
only.

What a batch holds and what it becomes is the journey update's business
(`integration.journey.update` and its derivers); these are only its statements, run in
the update's transaction, which holds the derive lock (`integration.store.locks`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import ColumnElement, Connection, exists, func, select, update

from integration.derived_types import derived_types
from integration.store.keys import in_keys
from integration.store.schema import current_resources, job_records, raw_resources
from mappings.model import SourceRef

# (source, resource type, resource id): one current resource.
ResourceKey = tuple[str, str, str]
_KEY_COLUMNS = (
    current_resources.c.source,
    current_resources.c.resource_type,
    current_resources.c.resource_id,
)


# Not deleted by its source.
_LIVE = current_resources.c.deleted.is_(False)


@dataclass(frozen=True, slots=True)
class CurrentResource:
    source: str
    resource_type: str
    resource_id: str
    version_key: str
    content: dict[str, Any]
    # Waiting for derivation when read (read as history, it may still be).
    pending: bool = False
    # Deleted by its source: what it put in the journey is to be taken out.
    deleted: bool = False

    @property
    def ref(self) -> SourceRef:
        return SourceRef(self.source, self.resource_type, self.resource_id, self.version_key)

    @property
    def key(self) -> ResourceKey:
        return (self.source, self.resource_type, self.resource_id)


def count_pending(conn: Connection) -> int:
    """How many current resources wait for derivation."""
    return int(
        conn.execute(
            select(func.count())
            .select_from(current_resources)
            .where(current_resources.c.needs_derive.is_(True))
        ).scalar_one()
    )


def anything_pending(conn: Connection) -> bool:
    """Whether any current resource waits for derivation (one index entry read)."""
    first = select(current_resources.c.resource_id).where(
        current_resources.c.needs_derive.is_(True)
    )
    return conn.execute(first.limit(1)).first() is not None


def flag_all_for_derivation(conn: Connection) -> int:
    """Mark every derivable resource for derivation again (a new pack applies to all)."""
    result = conn.execute(
        update(current_resources)
        .where(current_resources.c.resource_type.in_(derived_types()))
        .values(needs_derive=True)
    )
    return int(result.rowcount)


def pending_resources(
    conn: Connection,
    resource_type: str,
    limit: int,
    among: Sequence[ResourceKey] | None = None,
) -> list[CurrentResource]:
    """Up to `limit` current resources of one type waiting for derivation, in a stable
    order; with `among`, only those with these keys.

    On PostgreSQL the rows are locked until the batch's transaction ends, and rows
    another transaction is writing are skipped (a later batch takes them). Without the
    lock, a newer version stored while the batch derived the old one (a pull storing
    beside a derive process, a worker beside a push) would have its flag cleared by the
    batch's `mark_derived`, and the journey would keep the old version. SQLite has one
    writer at a time, which a batch holds from its first statement."""
    where: list[ColumnElement[bool]] = [current_resources.c.needs_derive.is_(True)]
    if among is not None:
        where.append(in_keys(_KEY_COLUMNS, among))
    return _load_current(conn, resource_type, *where, limit=limit, lock=True)


def _load_current(
    conn: Connection,
    resource_type: str,
    *where: ColumnElement[bool],
    limit: int | None = None,
    lock: bool = False,
) -> list[CurrentResource]:
    """Current resources of one type with their stored content, in a stable order.
    Sorted by the store only under a limit (the pending queue, read in its index's
    order): asked to sort a lookup by subject, SQLite without statistics read every
    resource of the type in the source through the primary key, which gives that
    order, instead of the subject index."""
    query = (
        select(
            current_resources.c.source,
            current_resources.c.resource_id,
            raw_resources.c.version_key,
            raw_resources.c.content,
            current_resources.c.needs_derive,
            current_resources.c.deleted,
        )
        .join(raw_resources, raw_resources.c.id == current_resources.c.raw_id)
        .where(current_resources.c.resource_type == resource_type, *where)
    )
    rows: Iterable[Any]
    if lock:  # SQLite's dialect leaves FOR UPDATE out
        query = query.with_for_update(of=current_resources, skip_locked=True)
    if limit is not None:
        order = (current_resources.c.source, current_resources.c.resource_id)
        rows = conn.execute(query.order_by(*order).limit(limit))
    else:
        rows = sorted(conn.execute(query), key=lambda row: (row.source, row.resource_id))
    return [
        CurrentResource(
            row.source,
            resource_type,
            row.resource_id,
            row.version_key,
            orjson.loads(row.content),
            bool(row.needs_derive),
            bool(row.deleted),
        )
        for row in rows
    ]


def current_of_subjects(
    conn: Connection, resource_type: str, subjects: Sequence[tuple[str, str]]
) -> list[CurrentResource]:
    """Every current resource of one type about these (source, Patient id) subjects."""
    return _load_current(conn, resource_type, _of_subjects(subjects), _LIVE)


def recorded_of_subjects(
    conn: Connection, resource_type: str, subjects: Sequence[tuple[str, str]]
) -> list[CurrentResource]:
    """The current resources of one type about these (source, Patient id) subjects that
    have a job record (of the Observations, the instrument totals)."""
    return _load_current(
        conn,
        resource_type,
        _of_subjects(subjects),
        _LIVE,
        # EXISTS on the record's whole key: `resource_id IN (the type's records in the
        # source)` read every record of the type in the source for each resource.
        exists().where(
            job_records.c.source == current_resources.c.source,
            job_records.c.resource_type == resource_type,
            job_records.c.resource_id == current_resources.c.resource_id,
        ),
    )


def _of_subjects(subjects: Sequence[tuple[str, str]]) -> ColumnElement[bool]:
    return in_keys((current_resources.c.source, current_resources.c.subject_id), subjects)


def flag_of_subjects(
    conn: Connection, resource_type: str, subjects: Sequence[tuple[str, str]]
) -> list[ResourceKey]:
    """Put the live resources of one type about these (source, Patient id) subjects back
    on the queue; returns their keys."""
    if not subjects:
        return []
    keys = [
        (row.source, resource_type, row.resource_id)
        for row in conn.execute(
            select(current_resources.c.source, current_resources.c.resource_id).where(
                current_resources.c.resource_type == resource_type,
                _of_subjects(subjects),
                _LIVE,
            )
        )
    ]
    if keys:
        conn.execute(
            update(current_resources).where(in_keys(_KEY_COLUMNS, keys)).values(needs_derive=True)
        )
    return keys


def current_conditions(conn: Connection, source: str, ids: set[str]) -> dict[str, dict[str, Any]]:
    """The content of a source's current Conditions with these ids, by id."""
    return current_contents(conn, source, "Condition", ids)


def current_contents(
    conn: Connection, source: str, resource_type: str, ids: set[str]
) -> dict[str, dict[str, Any]]:
    """The content of a source's current resources of one type with these ids, by id."""
    if not ids:
        return {}
    rows = conn.execute(
        select(current_resources.c.resource_id, raw_resources.c.content)
        .join(raw_resources, raw_resources.c.id == current_resources.c.raw_id)
        .where(
            current_resources.c.source == source,
            current_resources.c.resource_type == resource_type,
            current_resources.c.resource_id.in_(ids),
            _LIVE,
        )
    ).all()
    return {row.resource_id: orjson.loads(row.content) for row in rows}


def mark_derived(conn: Connection, keys: Sequence[ResourceKey]) -> None:
    """These resources' journey is up to date: off the queue until they change again."""
    if not keys:
        return
    conn.execute(
        update(current_resources).where(in_keys(_KEY_COLUMNS, keys)).values(needs_derive=False)
    )


def flag_for_derivation(
    conn: Connection, source: str, resource_type: str, ids: Sequence[str]
) -> None:
    """Put a source's current resources of one type with these ids back on the queue."""
    conn.execute(
        update(current_resources)
        .where(
            current_resources.c.source == source,
            current_resources.c.resource_type == resource_type,
            current_resources.c.resource_id.in_(ids),
        )
        .values(needs_derive=True)
    )
