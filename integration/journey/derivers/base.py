"""What every deriver works with: the current resources of a batch, the counts it adds
to, and the writes they share (job records replaced, failures isolated).

A deriver runs inside the journey update's transaction, which holds the derive lock;
the update (`integration.journey.update`) reads the batch and marks it done.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import ColumnElement, Connection, delete, select, update

from integration.clock import utc_now
from integration.derived_types import record_types
from integration.store.keys import in_keys
from integration.store.quarantine import MappingFailure, record_mapping_failures
from integration.store.schema import current_resources, job_records, raw_resources
from integration.store.text import storable
from mappings.failed import failed_record
from mappings.model import JobRecord, SourceRef
from mappings.rulepack import RulePack

ResourceKey = tuple[str, str, str]
# Types that become job records; a Patient becomes a person, a Condition evidence.
RECORD_TYPES = record_types()


@dataclass(slots=True)
class JourneyUpdate:
    people_linked: int = 0
    records_by_job: Counter[str] = field(default_factory=Counter)
    resources: int = 0
    # Resources whose derivation failed and was isolated (see `journey quarantine`).
    mapping_failures: int = 0

    def add(self, other: JourneyUpdate) -> None:
        """Fold in a later run's counts (a sync derives in several rounds)."""
        self.people_linked += other.people_linked
        self.records_by_job.update(other.records_by_job)
        self.resources += other.resources
        self.mapping_failures += other.mapping_failures


@dataclass(frozen=True, slots=True)
class CurrentResource:
    source: str
    resource_type: str
    resource_id: str
    version_key: str
    content: dict[str, Any]

    @property
    def ref(self) -> SourceRef:
        return SourceRef(self.source, self.resource_type, self.resource_id, self.version_key)

    @property
    def key(self) -> ResourceKey:
        return (self.source, self.resource_type, self.resource_id)


# Derives one batch of one type; returns further resources it flagged for derivation
# (a Condition's Encounters), which a scoped run takes on too.
Derive = Callable[[Connection, list[CurrentResource], RulePack, JourneyUpdate], list[ResourceKey]]


def record_id(ref: SourceRef) -> str:
    """Stable across remaps: one record per (source, type, id)."""
    key = f"{ref.source}|{ref.resource_type}|{ref.resource_id}"
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def load_current(
    conn: Connection, resource_type: str, *where: ColumnElement[bool], limit: int | None = None
) -> list[CurrentResource]:
    """Current resources of one type with their stored content, in a stable order."""
    query = (
        select(
            current_resources.c.source,
            current_resources.c.resource_id,
            raw_resources.c.version_key,
            raw_resources.c.content,
        )
        .join(raw_resources, raw_resources.c.id == current_resources.c.raw_id)
        .where(current_resources.c.resource_type == resource_type, *where)
        .order_by(current_resources.c.source, current_resources.c.resource_id)
    )
    if limit is not None:
        query = query.limit(limit)
    return [
        CurrentResource(
            row.source, resource_type, row.resource_id, row.version_key, orjson.loads(row.content)
        )
        for row in conn.execute(query)
    ]


def mark_done(conn: Connection, batch: Iterable[CurrentResource]) -> None:
    keys = [(c.source, c.resource_type, c.resource_id) for c in batch]
    conn.execute(
        update(current_resources)
        .where(
            in_keys(
                (
                    current_resources.c.source,
                    current_resources.c.resource_type,
                    current_resources.c.resource_id,
                ),
                keys,
            )
        )
        .values(needs_derive=False)
    )


def isolate(
    conn: Connection,
    failed: list[tuple[CurrentResource, str]],
    pack: RulePack,
    found: JourneyUpdate,
) -> None:
    """Quarantine failed resources as `mapping` entries; those of a type that becomes
    job records (`RECORD_TYPES`) also get their explained `unclassified` record."""
    now = utc_now()
    record_mapping_failures(
        conn,
        [
            MappingFailure(
                c.source,
                c.resource_type,
                c.resource_id,
                c.version_key,
                failure,
                orjson.dumps(c.content).decode(),
            )
            for c, failure in failed
        ],
        now,
    )
    placed = [(c, failure) for c, failure in failed if c.resource_type in RECORD_TYPES]
    if placed:
        replace_records(
            conn,
            [c for c, _ in placed],
            [failed_record(c.content, c.ref, pack, failure) for c, failure in placed],
            found,
        )
    found.mapping_failures += len(failed)


def replace_records(
    conn: Connection,
    derived_from: list[CurrentResource],
    records: list[JobRecord],
    summary: JourneyUpdate,
) -> None:
    conn.execute(
        delete(job_records).where(
            in_keys(
                (job_records.c.source, job_records.c.resource_type, job_records.c.resource_id),
                [(c.source, c.resource_type, c.resource_id) for c in derived_from],
            )
        )
    )
    if not records:
        return
    now = utc_now()
    conn.execute(job_records.insert(), [_record_row(record, now) for record in records])
    summary.records_by_job.update(record.job.value for record in records)


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
