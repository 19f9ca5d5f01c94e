"""The feed's change log: appended in the transaction of each change, read by sequence.

Every writer of people, records and episodes holds the derive lock, so sequence
numbers are committed in order: a reader that has seen n never later finds a
smaller one appearing (the cursor contract of `GET /feed`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import orjson
from sqlalchemy import ColumnElement, Connection, and_, delete, false, func, or_, select

from integration.access.population import Population
from integration.store.populations import in_population
from integration.store.schema import feed_events, job_records, person_links
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
    # What webhook filters select on: the sources the change concerns, and for an
    # episode its concern.
    sources: Iterable[str] = ()
    concern: str | None = None


def _sources_text(sources: Iterable[str]) -> str | None:
    names = sorted(set(sources))
    return f",{','.join(names)}," if names else None


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
                    "sources": _sources_text(change.sources),
                    "concern": change.concern,
                }
                for change in changes
            ],
        )


@dataclass(frozen=True, slots=True)
class EventFilter:
    """Which events a reader wants; an empty tuple selects every value. Events that
    carry no sources (or no concern) never match a sources (or concerns) filter."""

    types: Sequence[str] = ()
    people: Sequence[str] = ()
    sources: Sequence[str] = ()
    concerns: Sequence[str] = ()
    # People whose events the reader may not see (privacy Consents).
    withheld: Sequence[str] = ()
    # The reader's population, if it has one: events about anyone else (or about no
    # one) are not selected.
    population: Population | None = None
    # No one at all (a delivery whose limited creator is no longer listed).
    nobody: bool = False

    def where(self) -> list[ColumnElement[bool]]:
        c = feed_events.c
        clauses: list[ColumnElement[bool]] = []
        if self.types:
            clauses.append(c.type.in_(sorted(set(self.types))))
        if self.people:
            clauses.append(c.person_id.in_(sorted(set(self.people))))
        if self.sources:
            # autoescape: a source name may hold "_", a LIKE wildcard.
            clauses.append(
                or_(
                    *(
                        c.sources.contains(f",{name},", autoescape=True)
                        for name in sorted(set(self.sources))
                    )
                )
            )
        if self.concerns:
            clauses.append(c.concern.in_(sorted(set(self.concerns))))
        if self.nobody:
            clauses.append(false())
        if self.withheld or self.population is not None:
            person = _whose()
            if self.withheld:
                clauses.append(or_(person.is_(None), person.not_in(sorted(set(self.withheld)))))
            if self.population is not None:
                clauses.append(in_population(person, self.population))
        return clauses


def _whose() -> ColumnElement[Any]:
    """Whom an event is about: its person, or for a record event written before the
    record's Patient was linked (about no one then), the person its subject has now.
    Privacy conditions go on this: a Consent or a population must not be passed by an
    event only because it was written too early to name anyone."""
    record = job_records.alias("event_record")
    link = person_links.alias("event_link")
    subject_person = (
        select(link.c.person_id)
        .select_from(
            record.join(
                link,
                and_(link.c.source == record.c.source, link.c.patient_id == record.c.subject_id),
            )
        )
        .where(record.c.id == feed_events.c.subject)
        .correlate(feed_events)
        .limit(1)
        .scalar_subquery()
    )
    return func.coalesce(feed_events.c.person_id, subject_person)


def read(
    conn: Connection,
    after: int,
    limit: int,
    wanted: EventFilter = EventFilter(),
    payloads: bool = False,
    upto: int | None = None,
) -> list[dict[str, Any]]:
    """Events after sequence `after` (and up to `upto`), in order, as stored (with
    `payloads`, the payload as JSON text; else none is read)."""
    columns = [c for c in feed_events.c if payloads or c.name != "payload"]
    query = select(*columns).where(feed_events.c.seq > after, *wanted.where())
    if upto is not None:
        query = query.where(feed_events.c.seq <= upto)
    rows = conn.execute(query.order_by(feed_events.c.seq).limit(limit))
    return [dict(row._mapping) for row in rows]


def event_json(row: dict[str, Any], full: bool) -> dict[str, Any]:
    event = {
        "id": f"evt_{row['seq']}",
        "type": row["type"],
        "subject": row["subject"],
        "person_id": row["person_id"],
        "version": row["version"],
        "time": row["occurred_at"],
    }
    if full:
        # Embedded as stored: never decoded to be encoded again.
        text = row["payload"]
        event["payload"] = None if text is None else orjson.Fragment(text)
    return event


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
