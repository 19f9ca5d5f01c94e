"""The feed's change log: appended in the transaction of each change, read by sequence.

Every writer of people, records and episodes holds the derive lock, so sequence
numbers are committed in order: a reader that has seen n never later finds a
smaller one appearing (the cursor contract of `GET /feed`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import orjson
from sqlalchemy import Connection, delete, func, select

from integration.store.schema import feed_events
from integration.store.upsert import execute_many


class FeedEventType(StrEnum):
    """What the feed reports; a filter naming anything else is refused."""

    PERSON_CREATED = "person.created"
    PERSON_CHANGED = "person.changed"
    PERSON_MERGED = "person.merged"
    PERSON_UNMERGED = "person.unmerged"
    RECORD_ADDED = "record.added"
    RECORD_CHANGED = "record.changed"
    RECORD_REMOVED = "record.removed"
    EPISODE_ADDED = "episode.added"
    EPISODE_CHANGED = "episode.changed"
    EPISODE_REMOVED = "episode.removed"


EVENT_TYPES = tuple(t.value for t in FeedEventType)


@dataclass(frozen=True, slots=True)
class Change:
    type: FeedEventType
    subject: str
    person_id: str | None
    version: str | None = None
    payload: dict[str, Any] | None = None


def append(conn: Connection, changes: Sequence[Change], now: str) -> None:
    if changes:
        # One driver executemany: an import writes an event per record.
        execute_many(
            conn,
            feed_events.insert(),
            [
                {
                    "type": change.type,
                    "subject": change.subject,
                    "person_id": change.person_id,
                    "version": change.version,
                    "occurred_at": now,
                    "payload": None
                    if change.payload is None
                    else orjson.dumps(change.payload).decode(),
                }
                for change in changes
            ],
        )


def read(
    conn: Connection,
    after: int,
    limit: int,
    types: Sequence[str] = (),
    person_id: str | None = None,
    payloads: bool = False,
) -> list[dict[str, Any]]:
    """Events after sequence `after`, in order, as stored (with `payloads`, the payload
    as JSON text; else none is read)."""
    columns = [c for c in feed_events.c if payloads or c.name != "payload"]
    query = select(*columns).where(feed_events.c.seq > after)
    if types:
        query = query.where(feed_events.c.type.in_(sorted(set(types))))
    if person_id is not None:
        query = query.where(feed_events.c.person_id == person_id)
    rows = conn.execute(query.order_by(feed_events.c.seq).limit(limit))
    return [dict(row._mapping) for row in rows]


def bounds(conn: Connection) -> tuple[int, int]:
    """(lowest, highest) sequence held; (0, 0) when the log is empty."""
    low, high = conn.execute(select(func.min(feed_events.c.seq), func.max(feed_events.c.seq))).one()
    return int(low or 0), int(high or 0)


def prune(conn: Connection, before: str) -> int:
    """Drop events that occurred before `before` (retention); returns how many. The
    newest event always stays: it keeps the cursors issued so far recognisable."""
    newest = select(func.max(feed_events.c.seq)).scalar_subquery()
    result = conn.execute(
        delete(feed_events).where(feed_events.c.occurred_at < before, feed_events.c.seq < newest)
    )
    return max(result.rowcount, 0)
