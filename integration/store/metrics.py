"""What /metrics reads from the store at scrape time: counts by source and resource
type, sync outcomes, the derivation backlog and feed deliveries. Every process
reading it sees the same numbers, whichever process wrote them.

Only aggregates and the names of sources, resource types and subscriptions leave
here: no resource, person or identifier.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import ColumnElement, Connection, func, select

from integration.store.quarantine import INTAKE
from integration.store.schema import (
    current_resources,
    episodes_stale,
    quarantine,
    raw_resources,
    sync_state,
    webhook_subscriptions,
)
from mappings.dates import ISO_FORMAT

# (source, resource type): the key of most counts.
SourceType = tuple[str, str]
# A quarantine entry whose input had no readable resourceType (malformed JSON, ...).
UNKNOWN_TYPE = "unknown"
# No transaction writing raw versions stays open this long (a batch commits in
# seconds), so every version received before it is committed and can be counted once.
SETTLED_AFTER = timedelta(minutes=10)


@dataclass(frozen=True, slots=True)
class SyncReading:
    source: str
    resource_type: str
    checkpoint: str | None
    last_finished: str | None
    last_succeeded: str | None
    last_failed: bool


@dataclass(frozen=True, slots=True)
class FeedReading:
    subscription: str
    kind: str
    delivered: int
    failures: int
    dead_lettered: int
    failing: bool


@dataclass(frozen=True, slots=True)
class StoreReadings:
    received: dict[SourceType, int]
    stored: dict[SourceType, int]
    # (source, resource type, stage) -> open entries.
    quarantined: dict[tuple[str, str, str], int]
    syncs: list[SyncReading]
    # resource type -> current resources waiting to be mapped.
    derivation_backlog: dict[str, int]
    episodes_backlog_people: int
    feeds: list[FeedReading]


class ReceivedTally:
    """Raw versions received, by source and resource type, counted without reading the
    whole raw zone on every scrape.

    The raw zone only grows, so versions up to a settled row id are counted once and
    kept; each reading counts only the rows after it. A row id is settled once every
    row before it must be committed: ids are handed out at insert, and a version
    received `SETTLED_AFTER` ago belongs to a transaction that has ended. The first
    reading counts everything once.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._settled_id = 0
        self._settled: dict[SourceType, int] = {}

    def read(self, conn: Connection, now: datetime | None = None) -> dict[SourceType, int]:
        cutoff = ((now or datetime.now(UTC)) - SETTLED_AFTER).strftime(ISO_FORMAT)
        r = raw_resources.c
        with self._lock:
            after = self._settled_id
            settled_id = conn.execute(
                select(func.max(r.id)).where(r.id > after, r.received_at < cutoff)
            ).scalar_one()
            if settled_id is not None:
                newly = _count_raw(conn, r.id > after, r.id <= settled_id)
                for key, count in newly.items():
                    self._settled[key] = self._settled.get(key, 0) + count
                self._settled_id = after = int(settled_id)
            counts = dict(self._settled)
        for key, count in _count_raw(conn, r.id > after).items():
            counts[key] = counts.get(key, 0) + count
        return counts


def _count_raw(conn: Connection, *where: ColumnElement[bool]) -> dict[SourceType, int]:
    r = raw_resources.c
    rows = conn.execute(
        select(r.source, r.resource_type, func.count())
        .where(*where)
        .group_by(r.source, r.resource_type)
    )
    return {(source, kind): int(count) for source, kind, count in rows}


def read_store(conn: Connection, received: ReceivedTally) -> StoreReadings:
    """Everything /metrics takes from the store, in one connection."""
    return StoreReadings(
        received=received.read(conn),
        stored=_stored(conn),
        quarantined=_quarantined(conn),
        syncs=_syncs(conn),
        derivation_backlog=_derivation_backlog(conn),
        episodes_backlog_people=int(
            conn.execute(select(func.count()).select_from(episodes_stale)).scalar_one()
        ),
        feeds=_feeds(conn),
    )


def _stored(conn: Connection) -> dict[SourceType, int]:
    cur = current_resources.c
    rows = conn.execute(
        select(cur.source, cur.resource_type, func.count()).group_by(cur.source, cur.resource_type)
    )
    return {(source, kind): int(count) for source, kind, count in rows}


def _quarantined(conn: Connection) -> dict[tuple[str, str, str], int]:
    q = quarantine.c
    rows = conn.execute(
        select(q.source, q.resource_type, q.stage, func.count())
        .where(q.resolved_at.is_(None))
        .group_by(q.source, q.resource_type, q.stage)
    )
    return {
        (source, kind or UNKNOWN_TYPE, stage or INTAKE): int(count)
        for source, kind, stage, count in rows
    }


def _syncs(conn: Connection) -> list[SyncReading]:
    s = sync_state.c
    rows = conn.execute(
        select(
            s.source, s.resource_type, s.checkpoint, s.last_finished, s.last_succeeded, s.last_error
        ).order_by(s.source, s.resource_type)
    )
    return [
        SyncReading(
            source=row.source,
            resource_type=row.resource_type,
            checkpoint=row.checkpoint,
            last_finished=row.last_finished,
            last_succeeded=row.last_succeeded,
            last_failed=row.last_finished is not None and row.last_error is not None,
        )
        for row in rows
    ]


def _derivation_backlog(conn: Connection) -> dict[str, int]:
    cur = current_resources.c
    rows = conn.execute(
        select(cur.resource_type, func.count())
        .where(cur.needs_derive.is_(True))
        .group_by(cur.resource_type)
    )
    return {kind: int(count) for kind, count in rows}


def _feeds(conn: Connection) -> list[FeedReading]:
    w = webhook_subscriptions.c
    rows = conn.execute(
        select(w.id, w.kind, w.delivered, w.failures, w.dead_lettered, w.failing_since).order_by(
            w.id
        )
    )
    return [
        FeedReading(
            subscription=row.id,
            kind=row.kind,
            delivered=int(row.delivered),
            failures=int(row.failures),
            dead_lettered=int(row.dead_lettered),
            failing=row.failing_since is not None,
        )
        for row in rows
    ]
