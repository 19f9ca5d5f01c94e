"""Read side of the journey zone: people, a person's journey, store status.

Keyset paging everywhere (never OFFSET), so a page costs the same at 1k or
100k people. Queries return plain dicts ready for the API to serialise.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import (
    ColumnElement,
    Connection,
    FromClause,
    Select,
    Table,
    and_,
    bindparam,
    func,
    or_,
    select,
)

from integration.store.derivation import count_pending
from integration.store.keys import in_keys
from integration.store.quarantine import INTAKE, MAPPING, open_counts
from integration.store.schema import (
    current_resources,
    episodes,
    episodes_stale,
    job_records,
    patient_identifiers,
    people,
    person_links,
    quarantine,
    raw_resources,
    webhook_subscriptions,
)

MAX_MERGE_HOPS = 16


@dataclass(frozen=True, slots=True)
class JourneyFilter:
    jobs: Sequence[str] = ()
    start: str | None = None  # inclusive, ISO UTC
    end: str | None = None  # exclusive, ISO UTC
    # Records out of the journey (entered in error, cancelled, superseded), when asked.
    include_excluded: bool = False


# The two statements of every journey read, built once: building a select is a
# good part of a read's Python time (SQLAlchemy caches the compiled SQL, not the
# construction and cache-key work of a new statement object).
_MERGED_INTO = select(people.c.merged_into, people.c.retired_at).where(
    people.c.id == bindparam("person_id")
)
_JOURNEY_ALL = (
    select(job_records)
    .join(
        person_links,
        and_(
            person_links.c.source == job_records.c.source,
            person_links.c.patient_id == job_records.c.subject_id,
        ),
    )
    .where(person_links.c.person_id == bindparam("person_id"))
)
# Shown: records in the journey that restate no other source's record of one event.
_JOURNEY = _JOURNEY_ALL.where(job_records.c.excluded.is_(False), job_records.c.event_of.is_(None))


_JOURNEY_PAGE = _JOURNEY.order_by(job_records.c.occurred_start, job_records.c.id).limit(
    bindparam("size")
)


def resolve_person(conn: Connection, person_id: str) -> str | None:
    """The surviving id of a person, following merges; None when unknown or retired (a
    retired person answers as nobody: every source deleted its Patients)."""
    current = person_id
    for _ in range(MAX_MERGE_HOPS):
        row = conn.execute(_MERGED_INTO, {"person_id": current}).first()
        if row is None or row.retired_at is not None:
            return None
        if row.merged_into is None:
            return current
        current = row.merged_into
    return current


def person_ids_with_identifiers(pairs: Sequence[tuple[str, str]]) -> Select[Any]:
    """Ids of the people linked to a Patient carrying any of these (system, value) pairs."""
    return (
        select(person_links.c.person_id)
        .join(
            patient_identifiers,
            and_(
                patient_identifiers.c.source == person_links.c.source,
                patient_identifiers.c.patient_id == person_links.c.patient_id,
            ),
        )
        .where(in_keys((patient_identifiers.c.system, patient_identifiers.c.value), pairs))
    )


def list_people(
    conn: Connection,
    limit: int,
    after: str | None = None,
    identifier: tuple[str, str] | None = None,
    readable: Sequence[ColumnElement[bool]] = (),
) -> list[dict[str, Any]]:
    """A page of people; `readable`: conditions on `people.id` bounding who a client
    may see (`integration.access.visibility`)."""
    query = select(people.c.id, people.c.display_name, people.c.birth_date).where(
        people.c.merged_into.is_(None), people.c.retired_at.is_(None), *readable
    )
    if identifier is not None:
        query = query.where(people.c.id.in_(person_ids_with_identifiers([identifier])))
    if after is not None:
        query = query.where(people.c.id > after)
    rows = conn.execute(query.order_by(people.c.id).limit(limit)).all()
    links = _links(conn, [row.id for row in rows])
    return [_person_summary(row, links.get(row.id, [])) for row in rows]


def _links(conn: Connection, person_ids: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    if not person_ids:
        return found
    rows = conn.execute(
        select(person_links)
        .where(person_links.c.person_id.in_(person_ids))
        .order_by(person_links.c.source, person_links.c.patient_id)
    ).all()
    for row in rows:
        found.setdefault(row.person_id, []).append(
            {
                "source": row.source,
                "patient_id": row.patient_id,
                "name": row.display_name,
                "birth_date": row.birth_date,
            }
        )
    return found


def _person_summary(person: Any, links: list[dict[str, Any]]) -> dict[str, Any]:
    """A person as listed: the name and birth date survivorship chose for it
    (`integration.journey.identity`), and its source Patients."""
    # A store migrated from before survivorship shows a Patient's own until its
    # Patients are linked again (the migration put them back on the queue).
    name = person.display_name or next((link["name"] for link in links if link["name"]), None)
    birth = person.birth_date or next(
        (link["birth_date"] for link in links if link["birth_date"]), None
    )
    return {"id": person.id, "name": name, "birth_date": birth, "sources": links}


def get_person(conn: Connection, person_id: str) -> dict[str, Any] | None:
    links = _links(conn, [person_id]).get(person_id, [])
    row = conn.execute(
        select(people.c.id, people.c.display_name, people.c.birth_date).where(
            people.c.id == person_id
        )
    ).first()
    if row is None:
        return None
    person = _person_summary(row, links)
    pairs = [(link["source"], link["patient_id"]) for link in links]
    identifiers: list[dict[str, str]] = []
    counts: dict[str, int] = {}
    if pairs:
        for row in conn.execute(
            select(patient_identifiers)
            .where(_any_link(patient_identifiers.c.source, patient_identifiers.c.patient_id, pairs))
            .order_by(patient_identifiers.c.system, patient_identifiers.c.value)
        ):
            identifiers.append({"system": row.system, "value": row.value, "source": row.source})
        for row in conn.execute(
            select(job_records.c.job, func.count())
            .where(
                _any_link(job_records.c.source, job_records.c.subject_id, pairs),
                job_records.c.excluded.is_(False),
                job_records.c.event_of.is_(None),
            )
            .group_by(job_records.c.job)
        ):
            counts[row[0]] = int(row[1])
    person["identifiers"] = identifiers
    person["record_counts"] = counts
    return person


def _any_link(source_col: Any, patient_col: Any, pairs: Sequence[tuple[str, str]]) -> Any:
    return or_(*(and_(source_col == source, patient_col == patient) for source, patient in pairs))


def journey(
    conn: Connection,
    person_id: str,
    limit: int,
    after: tuple[str, str] | None = None,
    where: JourneyFilter | None = None,
) -> list[dict[str, Any]]:
    """A person's job records in time order (records without a time first)."""
    where = where or JourneyFilter()
    query = _JOURNEY_ALL if where.include_excluded else _JOURNEY
    if where.jobs:
        query = query.where(job_records.c.job.in_(where.jobs))
    if where.start:
        query = query.where(job_records.c.occurred_start >= where.start)
    if where.end:
        query = query.where(job_records.c.occurred_start < where.end)
    if after is not None:
        start, record = after
        query = query.where(
            or_(
                job_records.c.occurred_start > start,
                and_(job_records.c.occurred_start == start, job_records.c.id > record),
            )
        )
    if query is _JOURNEY:  # the common read: a prebuilt statement
        rows = conn.execute(_JOURNEY_PAGE, {"person_id": person_id, "size": limit}).all()
    else:
        rows = conn.execute(
            query.order_by(job_records.c.occurred_start, job_records.c.id).limit(limit),
            {"person_id": person_id},
        ).all()
    return [_record(row._mapping) for row in rows]


def _record(row: Any) -> dict[str, Any]:
    joined = orjson.loads(row["joined"])
    reason = row["reason"]
    if joined:
        # One event seen by several sources: the reason says which were joined and why.
        also = "; ".join(
            f"{j['source']} {j['resource_type']}/{j['resource_id']} ({j['why']})" for j in joined
        )
        reason = f"{reason}. One event with: {also}"
    return {
        "id": row["id"],
        "job": row["job"],
        "occurred_start": row["occurred_start"] or None,
        "occurred_end": row["occurred_end"],
        "title": row["title"],
        "setting": row["setting"],
        "concern_codes": orjson.loads(row["concern_codes"]),
        "source": {
            "source": row["source"],
            "resource_type": row["resource_type"],
            "resource_id": row["resource_id"],
            "version": row["version_key"],
        },
        "reason": {
            "rule_id": row["rule_id"],
            "pack_version": row["pack_version"],
            "matched_codes": orjson.loads(row["matched_codes"]),
            "text": reason,
        },
        "instrument": row["instrument"],
        "score": row["score"],
        "fulfilment_score": row["fulfilment_score"],
        "warnings": orjson.loads(row["warnings"]),
        "flags": orjson.loads(row["flags"]),
        "excluded": row["excluded"],
        "band": row["band"],
        "instrument_version": row["instrument_version"],
        "scores": orjson.loads(row["scores"]),
        "joined": joined,
        "event_of": row["event_of"],
        # A tombstone (shown with include_excluded): when and why it left the journey.
        "deleted_at": row["deleted_at"],
        "removed_reason": row["removed_reason"],
    }


def store_status(conn: Connection) -> dict[str, Any]:
    """Counts a person running the store wants at a glance."""
    raw_by_type = {
        row[0]: int(row[1])
        for row in conn.execute(
            select(current_resources.c.resource_type, func.count())
            .where(current_resources.c.deleted.is_(False))
            .group_by(current_resources.c.resource_type)
        )
    }
    by_source = {
        row[0]: int(row[1])
        for row in conn.execute(
            select(current_resources.c.source, func.count())
            .where(current_resources.c.deleted.is_(False))
            .group_by(current_resources.c.source)
        )
    }
    records = {
        row[0]: int(row[1])
        for row in conn.execute(select(job_records.c.job, func.count()).group_by(job_records.c.job))
    }
    open_quarantine_counts = open_counts(conn)
    return {
        "people": int(
            conn.execute(
                select(func.count())
                .select_from(people)
                .where(people.c.merged_into.is_(None), people.c.retired_at.is_(None))
            ).scalar_one()
        ),
        "resources_by_type": raw_by_type,
        "resources_by_source": by_source,
        "raw_versions": int(
            conn.execute(select(func.count()).select_from(raw_resources)).scalar_one()
        ),
        "records_by_job": records,
        "pending_derivation": count_pending(conn),
        "episodes": int(conn.execute(select(func.count()).select_from(episodes)).scalar_one()),
        # People whose kept episodes (the cohort measures') wait to be recomputed.
        "episodes_pending_people": int(
            conn.execute(select(func.count()).select_from(episodes_stale)).scalar_one()
        ),
        # Open entries, input that could not be stored plus resources whose mapping
        # failed (isolated: each has an explained unclassified record or no person).
        "quarantine_open": open_quarantine_counts[INTAKE] + open_quarantine_counts[MAPPING],
        "quarantine_open_intake": open_quarantine_counts[INTAKE],
        "mapping_failures_open": open_quarantine_counts[MAPPING],
        "quarantine_closed_by_operator": open_quarantine_counts["closed_by_operator"],
        "last_received_at": conn.execute(
            select(func.max(raw_resources.c.received_at))
        ).scalar_one(),
        **_webhook_counts(conn),
    }


def _webhook_counts(conn: Connection) -> dict[str, int]:
    subs = webhook_subscriptions.c
    total, failing, dead = conn.execute(
        select(
            func.count(),
            func.count(subs.failing_since),
            func.coalesce(func.sum(subs.dead_lettered), 0),
        )
    ).one()
    return {
        "webhook_subscriptions": int(total),
        "webhook_subscriptions_failing": int(failing),
        "webhook_dead_letters": int(dead),
    }


def featured_person(conn: Connection) -> str | None:
    """The person with records from the most sources, then the most jobs, then the most
    records (the demo's first look)."""
    row = conn.execute(
        select(person_links.c.person_id)
        .join(
            job_records,
            (job_records.c.source == person_links.c.source)
            & (job_records.c.subject_id == person_links.c.patient_id),
        )
        .group_by(person_links.c.person_id)
        .order_by(
            func.count(func.distinct(job_records.c.source)).desc(),
            func.count(func.distinct(job_records.c.job)).desc(),
            func.count().desc(),
            person_links.c.person_id,
        )
        .limit(1)
    ).first()
    return row.person_id if row else None


ORIGINS_PER_STATEMENT = 500


def _current_of(table: Table) -> ColumnElement[bool]:
    """`table`'s row is about the current resource with its (source, type, id)."""
    return and_(
        current_resources.c.source == table.c.source,
        current_resources.c.resource_type == table.c.resource_type,
        current_resources.c.resource_id == table.c.resource_id,
    )


# Each job record with the raw row of its resource's current version (its origin).
_RECORD_ORIGIN = job_records.join(current_resources, _current_of(job_records)).join(
    raw_resources, raw_resources.c.id == current_resources.c.raw_id
)


def _count(conn: Connection, rows: FromClause, *where: ColumnElement[bool]) -> int:
    return int(conn.execute(select(func.count()).select_from(rows).where(*where)).scalar_one())


def latest_raw_id(conn: Connection) -> int:
    """The newest raw row's id (0: none yet): what a run stores comes after it."""
    return int(conn.execute(select(func.max(raw_resources.c.id))).scalar_one() or 0)


@dataclass(frozen=True, slots=True)
class MappedFiles:
    """What an import's files are in the journey now (see `mapped_from_files`)."""

    resources: int
    people_linked: int
    mapping_failures: int
    records_by_job: Counter[str]


# Each current resource with the raw row of its current version (its origin). The key
# columns let a store read it from the raw rows' id range, through the primary key.
_CURRENT_ORIGIN = raw_resources.join(
    current_resources,
    and_(_current_of(raw_resources), current_resources.c.raw_id == raw_resources.c.id),
)


def mapped_from_files(
    conn: Connection,
    source: str,
    origins: Sequence[str],
    after_raw_id: int,
    derived: Sequence[str],
) -> MappedFiles:
    """The resources of these `derived` types that `source` has from these origins in
    versions stored after raw row `after_raw_id` (what an import stored), as the journey
    holds them now: how many, their Patients linked to a person, those whose mapping
    failed (open `mapping` entries), and their job records counted by job (`excluded`
    when out of the journey)."""
    resources = people = failures = 0
    records: Counter[str] = Counter()
    for start in range(0, len(origins), ORIGINS_PER_STATEMENT):
        stored = and_(
            current_resources.c.source == source,
            current_resources.c.resource_type.in_(derived),
            # Both: the raw rows' range (what the import wrote), and their current ones.
            raw_resources.c.id > after_raw_id,
            current_resources.c.raw_id > after_raw_id,
            raw_resources.c.origin.in_(origins[start : start + ORIGINS_PER_STATEMENT]),
        )
        resources += _count(conn, _CURRENT_ORIGIN, stored)
        people += _count(
            conn,
            _CURRENT_ORIGIN,
            stored,
            current_resources.c.resource_type == "Patient",
            select(person_links.c.person_id)
            .where(
                person_links.c.source == current_resources.c.source,
                person_links.c.patient_id == current_resources.c.resource_id,
            )
            .exists(),
        )
        failures += _count(
            conn,
            _CURRENT_ORIGIN,
            stored,
            select(quarantine.c.id)
            .where(
                _current_of(quarantine),
                quarantine.c.stage == MAPPING,
                quarantine.c.resolved_at.is_(None),
            )
            .exists(),
        )
        rows = conn.execute(
            select(job_records.c.job, job_records.c.excluded, func.count())
            .select_from(_RECORD_ORIGIN)
            # Not tombstones (a retired member's, say): a mapping counts none.
            .where(stored, job_records.c.source == source, job_records.c.deleted_at.is_(None))
            .group_by(job_records.c.job, job_records.c.excluded)
        )
        for job, excluded, count in rows:
            records["excluded" if excluded else job] += count
    return MappedFiles(resources, people, failures, records)


def records_in_no_journey(
    conn: Connection, limit: int, source: str, origins: Sequence[str]
) -> tuple[int, list[dict[str, Any]]]:
    """Job records no person's journey holds, of the resources `source` has from these
    origins (the files an import read): their subject Patient is not linked to a person
    (not arrived yet), or they name no subject. A count, and up to `limit` examples
    with where each came from."""
    count = 0
    examples: list[dict[str, Any]] = []
    # A batch of origins per statement: a folder of many files stays within every
    # backend's limit on bound parameters.
    for start in range(0, len(origins), ORIGINS_PER_STATEMENT):
        batch = origins[start : start + ORIGINS_PER_STATEMENT]
        condition = and_(
            job_records.c.source == source,
            raw_resources.c.origin.in_(batch),
            # A tombstone waits for no one: its resource was deleted.
            job_records.c.deleted_at.is_(None),
            or_(
                job_records.c.subject_id.is_(None),
                ~select(person_links.c.person_id)
                .where(
                    person_links.c.source == job_records.c.source,
                    person_links.c.patient_id == job_records.c.subject_id,
                )
                .exists(),
            ),
        )
        count += conn.execute(
            select(func.count()).select_from(_RECORD_ORIGIN).where(condition)
        ).scalar_one()
        if len(examples) < limit:
            rows = conn.execute(
                select(
                    job_records.c.source,
                    job_records.c.resource_type,
                    job_records.c.resource_id,
                    job_records.c.subject_id,
                    raw_resources.c.origin,
                    raw_resources.c.location,
                )
                .select_from(_RECORD_ORIGIN)
                .where(condition)
                .order_by(job_records.c.resource_id)
                .limit(limit - len(examples))
            ).all()
            examples.extend(dict(row._mapping) for row in rows)
    return int(count), examples
