"""Removing what the store must not keep: every stored version of a resource, the job
records and index entries made from it, the quarantine entries that hold its content,
and what the feed said about its records (`integration.journey.purge` takes it out
of the journey first).

What stays is what says nothing about the patient: a deletion version (`{}`) as the
resource's current row, so a version no newer arriving late stays history, and the
feed's positions (an event's payload is replaced by a note that it was purged).
"""

from __future__ import annotations

from collections.abc import Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass

import orjson
from sqlalchemy import Connection, delete, select, update

from integration.store.derivation import ResourceKey
from integration.store.keys import in_keys
from integration.store.raw import IncomingResource, raw_insert_statement, raw_row
from integration.store.schema import (
    current_resources,
    feed_events,
    job_records,
    pushed_content,
    quarantine,
    raw_resources,
    resource_identifiers,
    resource_links,
)
from integration.store.upsert import execute_many

PURGED_VERSION = "purged"
_CHUNK = 200


@dataclass(slots=True)
class Purged:
    """How much was removed."""

    resources: int = 0
    versions: int = 0
    records: int = 0
    quarantine_entries: int = 0
    feed_events_scrubbed: int = 0

    def add(self, other: Purged) -> None:
        self.resources += other.resources
        self.versions += other.versions
        self.records += other.records
        self.quarantine_entries += other.quarantine_entries
        self.feed_events_scrubbed += other.feed_events_scrubbed


def stored_keys(conn: Connection, keys: Sequence[ResourceKey]) -> list[ResourceKey]:
    """Those of these (source, type, id) of which anything is kept: a stored version, or
    a quarantine entry holding what arrived."""
    raw, q = raw_resources.c, quarantine.c
    found: set[ResourceKey] = set()
    for at in range(0, len(keys), _CHUNK):
        part = keys[at : at + _CHUNK]
        for columns in (
            (raw.source, raw.resource_type, raw.resource_id),
            (q.source, q.resource_type, q.resource_id),
        ):
            rows = conn.execute(select(*columns).where(in_keys(columns, part)).distinct())
            found.update((row[0], row[1], row[2]) for row in rows)
    return [key for key in keys if key in found]


def remove_stored(
    conn: Connection, keys: Sequence[ResourceKey], current: AbstractSet[ResourceKey], now: str
) -> Purged:
    """Remove what the store holds of these resources (already out of the journey);
    those in `current` (with a current row) keep it, as a deletion saying "purged"."""
    done = Purged(resources=len(keys))
    for at in range(0, len(keys), _CHUNK):
        chunk = list(keys[at : at + _CHUNK])
        done.add(_remove_chunk(conn, chunk, [k for k in chunk if k in current], now))
    return done


def _remove_chunk(
    conn: Connection, keys: list[ResourceKey], current: list[ResourceKey], now: str
) -> Purged:
    done = Purged()
    raw = raw_resources.c
    done.versions = conn.execute(
        delete(raw_resources).where(
            in_keys((raw.source, raw.resource_type, raw.resource_id), keys),
            raw.deleted.is_(False),
        )
    ).rowcount
    # The current row keeps pointing at a version, now one that says only "purged".
    marks = [
        IncomingResource(
            source,
            rtype,
            rid,
            f"{PURGED_VERSION}:{now}",
            None,
            None,
            None,
            None,
            "{}",
            deleted=True,
        )
        for source, rtype, rid in current
    ]
    execute_many(conn, raw_insert_statement(conn), [raw_row(m.raw_key, m, now) for m in marks])
    cur = current_resources.c
    for mark in marks:
        conn.execute(
            update(current_resources)
            .where(
                cur.source == mark.source,
                cur.resource_type == mark.resource_type,
                cur.resource_id == mark.resource_id,
            )
            .values(
                raw_id=select(raw.id).where(raw.raw_key == mark.raw_key).scalar_subquery(),
                deleted=True,
                needs_derive=False,
                subject_id=None,
            )
        )
    records = job_records.c
    ids = list(
        conn.execute(
            select(records.id).where(
                in_keys((records.source, records.resource_type, records.resource_id), keys)
            )
        ).scalars()
    )
    for at in range(0, len(ids), _CHUNK):
        part = ids[at : at + _CHUNK]
        conn.execute(delete(job_records).where(records.id.in_(part)))
        done.feed_events_scrubbed += conn.execute(
            update(feed_events)
            .where(feed_events.c.subject.in_(part), feed_events.c.type.like("record.%"))
            .values(payload=orjson.dumps({"purged": True, "at": now}).decode())
        ).rowcount
    done.records = len(ids)
    q = quarantine.c
    done.quarantine_entries = conn.execute(
        delete(quarantine).where(in_keys((q.source, q.resource_type, q.resource_id), keys))
    ).rowcount
    ident = resource_identifiers.c
    conn.execute(
        delete(resource_identifiers).where(
            in_keys((ident.source, ident.resource_type, ident.resource_id), keys)
        )
    )
    pushed = pushed_content.c
    conn.execute(
        delete(pushed_content).where(
            in_keys((pushed.source, pushed.resource_type, pushed.resource_id), keys)
        )
    )
    links = resource_links.c
    conn.execute(
        delete(resource_links).where(in_keys((links.source, links.from_type, links.from_id), keys))
    )
    return done


def current_states(
    conn: Connection, keys: Sequence[ResourceKey]
) -> dict[ResourceKey, tuple[bool, str | None]]:
    """(source, type, id) -> whether its current version is a deletion, and the Patient
    it is about, for those with a current row."""
    c = current_resources.c
    found: dict[ResourceKey, tuple[bool, str | None]] = {}
    for at in range(0, len(keys), _CHUNK):
        rows = conn.execute(
            select(c.source, c.resource_type, c.resource_id, c.deleted, c.subject_id).where(
                in_keys((c.source, c.resource_type, c.resource_id), keys[at : at + _CHUNK])
            )
        )
        found.update(
            {
                (r.source, r.resource_type, r.resource_id): (bool(r.deleted), r.subject_id)
                for r in rows
            }
        )
    return found


def resources_of_subjects(
    conn: Connection, source: str, patient_ids: Sequence[str]
) -> list[ResourceKey]:
    """Every resource of `source` about these Patients, the Patients included."""
    c = current_resources.c
    found: list[ResourceKey] = []
    for at in range(0, len(patient_ids), _CHUNK):
        part = list(patient_ids[at : at + _CHUNK])
        rows = conn.execute(
            select(c.resource_type, c.resource_id).where(c.source == source, c.subject_id.in_(part))
        )
        found += [(source, row.resource_type, row.resource_id) for row in rows]
    return sorted(set(found))
