"""Job records as derivation writes them: each resource's records replaced whole, and
kept as tombstones when their resource is deleted by its source.

What the records say is decided by the mappings and the journey's derivers; reading
them (a person's journey, counts) is `integration.store.queries`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Connection, Select, bindparam, delete, select, update

from integration.store import feed
from integration.store.derivation import ResourceKey
from integration.store.feed import FeedEventType as Event
from integration.store.keys import in_keys
from integration.store.people import links_of
from integration.store.schema import job_records, person_links
from integration.store.text import storable
from integration.store.upsert import execute_many
from mappings.events import EVENT_TYPES, EventRecord
from mappings.model import Flag, Job, JobRecord, ScaleScore, SourceRef


def record_id(ref: SourceRef) -> str:
    """Stable across remaps: one record per (source, type, id)."""
    key = f"{ref.source}|{ref.resource_type}|{ref.resource_id}"
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def replace_job_records(
    conn: Connection,
    derived_from: Sequence[ResourceKey],
    records: Sequence[JobRecord],
    now: str,
) -> set[str]:
    """The job records of these (source, type, id) resources are now `records`, derived at
    `now`. Only what changed is written: an unchanged record is left as it is, a
    changed one replaced, a missing one deleted, and each change is a feed event in
    this transaction. Returns the people whose records changed (their records'
    subjects linked to a person, before and after)."""
    c = job_records.c
    keys = (c.source, c.resource_type, c.resource_id)
    stored = {
        row.id: dict(row._mapping)
        for row in conn.execute(
            select(*(c[name] for name in _COMPARED), c.deleted_at).where(
                in_keys(keys, derived_from)
            )
        )
    }
    fresh = {row["id"]: row for row in (_record_row(r, now) for r in records)}
    changed = [
        row
        for record, row in fresh.items()
        if record not in stored or any(stored[record][k] != row[k] for k in _COMPARED)
    ]
    removed = [record for record in stored if record not in fresh]
    gone = removed + [row["id"] for row in changed if row["id"] in stored]
    for at in range(0, len(gone), 500):
        conn.execute(delete(job_records).where(c.id.in_(gone[at : at + 500])))
    if changed:
        # One driver executemany: no per-row parameter processing (a batch is thousands).
        execute_many(conn, job_records.insert(), changed)
    return _record_changes(conn, stored, changed, removed, now)


# What makes a record a new version (derived_at does not; event_of and joined are the
# event joins', recomputed after).
_COMPARED = (
    "id",
    "source",
    "resource_type",
    "resource_id",
    "version_key",
    "subject_id",
    "job",
    "occurred_start",
    "occurred_end",
    "title",
    "setting",
    "concern_codes",
    "matched_codes",
    "rule_id",
    "pack_version",
    "reason",
    "instrument",
    "score",
    "fulfilment_score",
    "warnings",
    "flags",
    "excluded",
    "band",
    "instrument_version",
    "scores",
)


_JSON_COLUMNS = ("concern_codes", "matched_codes", "warnings", "flags", "scores")


def _payload(row: dict[str, Any]) -> dict[str, Any]:
    """A record's full form for the feed: its stored columns, the JSON ones embedded
    as they are (fragments: never decoded to be encoded again)."""
    return {k: orjson.Fragment(row[k]) if k in _JSON_COLUMNS else row[k] for k in _COMPARED}


def _record_changes(
    conn: Connection,
    stored: dict[str, dict[str, Any]],
    changed: Sequence[dict[str, Any]],
    removed: Sequence[str],
    now: str,
) -> set[str]:
    """Tell the feed of each record added, changed or removed; returns their people."""
    before = [stored[r["id"]] for r in changed if r["id"] in stored]
    before += [stored[record] for record in removed]
    subjects = {(r["source"], r["subject_id"]) for r in [*changed, *before] if r["subject_id"]}
    person_of = links_of(conn, sorted(subjects))

    def person(row: dict[str, Any]) -> str | None:
        return person_of.get((row["source"], row["subject_id"]))

    def was_live(record: str) -> bool:
        return record in stored and stored[record]["deleted_at"] is None

    # A tombstone's resource created again is a record added; a tombstone's removal
    # was told when its resource was deleted.
    changes = [
        feed.Change(
            Event.RECORD_CHANGED if was_live(row["id"]) else Event.RECORD_ADDED,
            row["id"],
            person(row),
            row["version_key"],
            _payload(row),
            sources=(row["source"],),
        )
        for row in changed
    ]
    changes += [
        feed.Change(
            Event.RECORD_REMOVED,
            record,
            person(stored[record]),
            stored[record]["version_key"],
            sources=(stored[record]["source"],),
        )
        for record in removed
        if was_live(record)
    ]
    feed.append(conn, changes, now)
    return set(person_of.values())


DELETED_BY_SOURCE = "deleted by source"
# The source retires the data of members who leave its roster (until they return).
LEFT_ROSTER = "left the member roster of its source"


@dataclass(frozen=True, slots=True)
class Tombstoned:
    """Whose records were tombstoned: their people, and their (source, Patient id)."""

    people: set[str]
    subjects: set[tuple[str, str]]


def tombstone_records(
    conn: Connection, deleted: Sequence[ResourceKey], now: str, reason: str = DELETED_BY_SOURCE
) -> Tombstoned:
    """The records of these (source, type, id) resources, deleted by their source,
    leave the journey: kept, excluded, with when and why (a tombstone), each told to
    the feed as removed. Records already tombstoned stay as they were."""
    c = job_records.c
    live = [
        dict(row._mapping)
        for row in conn.execute(
            select(*(c[name] for name in _COMPARED)).where(
                in_keys((c.source, c.resource_type, c.resource_id), deleted),
                c.deleted_at.is_(None),
            )
        )
    ]
    if not live:
        return Tombstoned(set(), set())
    ids = [row["id"] for row in live]
    for at in range(0, len(ids), 500):
        conn.execute(
            update(job_records)
            .where(c.id.in_(ids[at : at + 500]))
            # No longer an event either side of a join: the people's events join again.
            .values(
                excluded=True, deleted_at=now, removed_reason=reason, event_of=None, joined="[]"
            )
        )
    subjects = {(r["source"], r["subject_id"]) for r in live if r["subject_id"]}
    person_of = links_of(conn, sorted(subjects))

    def person(row: dict[str, Any]) -> str | None:
        return person_of.get((row["source"], row["subject_id"]))

    feed.append(
        conn,
        [
            feed.Change(
                Event.RECORD_REMOVED,
                row["id"],
                person(row),
                row["version_key"],
                {
                    **_payload({**row, "excluded": True}),
                    "deleted_at": now,
                    "removed_reason": reason,
                },
                sources=(row["source"],),
            )
            for row in live
        ],
        now,
    )
    return Tombstoned(set(person_of.values()), subjects)


def _record_row(record: JobRecord, now: str) -> dict[str, Any]:
    ref = record.source_ref
    return {
        "id": record_id(ref),
        "source": ref.source,
        "resource_type": ref.resource_type,
        "resource_id": ref.resource_id,
        "version_key": ref.version,
        "subject_id": storable(record.subject_id),
        "job": record.job.value,
        "occurred_start": record.occurred_start or "",
        "occurred_end": record.occurred_end,
        "title": storable(record.title),
        "setting": storable(record.setting),
        "concern_codes": orjson.dumps(list(record.concern_codes)).decode(),
        "matched_codes": orjson.dumps(list(record.matched_codes)).decode(),
        "rule_id": record.rule_id,
        "pack_version": record.pack_version,
        "reason": storable(record.reason),
        "instrument": storable(record.instrument),
        "score": record.score,
        "fulfilment_score": record.fulfilment_score,
        "warnings": orjson.dumps(list(record.warnings)).decode(),
        "derived_at": now,
        "flags": orjson.dumps([flag.value for flag in record.flags]).decode(),
        "excluded": record.excluded,
        "band": storable(record.band),
        "instrument_version": storable(record.instrument_version),
        "scores": orjson.dumps(
            [{"scale": s.scale, "value": s.value, "band": s.band} for s in record.scores]
        ).decode(),
    }


def records_of(
    conn: Connection, source: str, resource_type: str, ids: set[str]
) -> dict[str, JobRecord]:
    """The job records of a source's resources of one type with these ids, by id."""
    if not ids:
        return {}
    rows = conn.execute(
        select(job_records).where(
            job_records.c.source == source,
            job_records.c.resource_type == resource_type,
            job_records.c.resource_id.in_(ids),
            job_records.c.deleted_at.is_(None),
        )
    ).all()
    return {row.resource_id: _from_row(row._mapping) for row in rows}


def _from_row(row: Any) -> JobRecord:
    return JobRecord(
        job=Job(row["job"]),
        source_ref=SourceRef(
            row["source"], row["resource_type"], row["resource_id"], row["version_key"]
        ),
        subject_id=row["subject_id"],
        occurred_start=row["occurred_start"] or None,
        occurred_end=row["occurred_end"],
        title=row["title"],
        setting=row["setting"],
        concern_codes=tuple(orjson.loads(row["concern_codes"])),
        rule_id=row["rule_id"],
        pack_version=row["pack_version"],
        reason=row["reason"],
        matched_codes=tuple(orjson.loads(row["matched_codes"])),
        instrument=row["instrument"],
        score=row["score"],
        fulfilment_score=row["fulfilment_score"],
        warnings=tuple(orjson.loads(row["warnings"])),
        flags=tuple(Flag(flag) for flag in orjson.loads(row["flags"])),
        excluded=bool(row["excluded"]),
        band=row["band"],
        instrument_version=row["instrument_version"],
        scores=tuple(
            ScaleScore(score["scale"], score["value"], score["band"])
            for score in orjson.loads(row["scores"])
        ),
    )


def of_people(query: Select[Any], person_ids: Iterable[str]) -> Select[Any]:
    """A select of job records narrowed to these people's, with each row's person_id."""
    return (
        query.add_columns(person_links.c.person_id)
        .join(
            person_links,
            (person_links.c.source == job_records.c.source)
            & (person_links.c.patient_id == job_records.c.subject_id),
        )
        .where(person_links.c.person_id.in_(sorted(set(person_ids))))
    )


@dataclass(frozen=True, slots=True)
class StoredEvent:
    record: EventRecord
    person_id: str
    event_of: str | None
    joined: str


def event_records_of_people(conn: Connection, person_ids: Sequence[str]) -> list[StoredEvent]:
    """The records of these people that may be events seen by several sources."""
    if not person_ids:
        return []
    c = job_records.c
    query = of_people(
        select(
            c.id,
            c.source,
            c.resource_type,
            c.resource_id,
            c.occurred_start,
            c.occurred_end,
            c.setting,
            c.rule_id,
            c.matched_codes,
            c.concern_codes,
            c.excluded,
            c.event_of,
            c.joined,
        ),
        person_ids,
    ).where(c.resource_type.in_(sorted(EVENT_TYPES)))
    rows = conn.execute(query)
    return [
        StoredEvent(
            EventRecord(
                row.id,
                row.source,
                row.resource_type,
                row.resource_id,
                row.occurred_start,
                row.occurred_end,
                row.setting,
                row.rule_id,
                frozenset(orjson.loads(row.matched_codes) + orjson.loads(row.concern_codes)),
                bool(row.excluded),
            ),
            row.person_id,
            row.event_of,
            row.joined,
        )
        for row in rows
    ]


def set_events(conn: Connection, changes: Sequence[tuple[str, str | None, str]]) -> None:
    """(record id, the record it restates or None, joined JSON) for each changed record."""
    if changes:
        conn.execute(
            update(job_records)
            .where(job_records.c.id == bindparam("record"))
            .values(event_of=bindparam("event_of"), joined=bindparam("joined_json")),
            [
                {"record": record, "event_of": event_of, "joined_json": joined}
                for record, event_of, joined in changes
            ],
        )
