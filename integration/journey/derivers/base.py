"""What every deriver works with: the current resources of a batch, the counts it adds
to, and the writes they share (job records replaced, failures isolated).

A deriver runs inside the journey update's transaction, which holds the derive lock;
the update (`integration.journey.update`) reads the batch and marks it done. The
statements are the store's (`integration.store.derivation`, `.job_records`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import orjson
from sqlalchemy import Connection

from integration.clock import utc_now
from integration.derived_types import record_types
from integration.journey.events import reconcile_multi_source
from integration.store import episodes as episodes_store
from integration.store.derivation import CurrentResource as CurrentResource
from integration.store.derivation import ResourceKey as ResourceKey
from integration.store.job_records import replace_job_records
from integration.store.quarantine import MappingFailure, record_mapping_failures
from mappings.events import EVENT_TYPES
from mappings.failed import failed_record
from mappings.model import JobRecord
from mappings.rulepack import RulePack

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


# Derives one batch of one type; returns further resources it flagged for derivation
# (a Condition's Encounters), which a scoped run takes on too.
Derive = Callable[[Connection, list[CurrentResource], RulePack, JourneyUpdate], list[ResourceKey]]


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
    # A deleted resource gets no record, failing or not: it is out of the journey.
    placed = [
        (c, failure) for c, failure in failed if c.resource_type in RECORD_TYPES and not c.deleted
    ]
    if placed:
        replace_records(
            conn,
            [c for c, _ in placed],
            [failed_record(c.content, c.ref, pack, failure) for c, failure in placed],
            found,
        )
    found.mapping_failures += len(failed)


def counted_as(record: JobRecord) -> str:
    """How a summary counts a record: by job, or as `excluded` when it is out of the
    journey (entered in error, cancelled, a total shown with its response)."""
    return "excluded" if record.excluded else record.job.value


def replace_records(
    conn: Connection,
    derived_from: list[CurrentResource],
    records: list[JobRecord],
    summary: JourneyUpdate,
) -> None:
    """The job records of the resources derived from are now `records`, counted by job;
    the people whose records changed (before and after) join their events again and
    are marked for their episodes."""
    keys = [c.key for c in derived_from]
    people = replace_job_records(conn, keys, records, utc_now())
    if any(key[1] in EVENT_TYPES for key in keys):  # only events join; a screen never does
        reconcile_multi_source(conn, people)
    episodes_store.mark_stale(conn, people)
    summary.records_by_job.update(counted_as(record) for record in records)


def write_records(
    conn: Connection,
    batch: list[CurrentResource],
    records: list[JobRecord],
    failed: list[tuple[CurrentResource, str]],
    pack: RulePack,
    summary: JourneyUpdate,
) -> None:
    """A batch mapped one resource at a time: the records of those that mapped, and the
    failing ones isolated (each with its explained record and quarantine entry)."""
    failing_ids = {id(c) for c, _ in failed}
    replace_records(conn, [c for c in batch if id(c) not in failing_ids], records, summary)
    if failed:
        isolate(conn, failed, pack, summary)
