"""The ingest pipeline: intake (validate, key) -> raw zone or quarantine -> journey update.

Raw first, nothing lost: every item read is either stored as received or
quarantined with its error and place, in batches of one transaction each,
before it is mapped. Derivation then catches the journey zone up
(`integration.journey.update`): once the files are stored, and with validation
in worker processes also after each batch stored (`derives_while_storing`).
Memory holds one batch, not the file.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Connection, Engine

from connectors.files import FileReader, RawItem, discover, json_bytes, parse_line
from integration.clock import utc_now
from integration.derived_types import derived_types
from integration.errors import ConfigError
from integration.gc_policy import batch_collection
from integration.ingest.errors import ResourceRejected
from integration.ingest.intake import intake
from integration.ingest.pool import IntakePool, IntakeResult
from integration.journey.update import JourneyUpdate, orphan_records, update_journey
from integration.limits import DEFAULT_MAX_DEPTH
from integration.source_names import SOURCE_NAME_RULE, is_source_name
from integration.store.bulk_copy import copy_supported
from integration.store.derivation import anything_pending
from integration.store.engine import GrowingTables
from integration.store.errors import describe_error
from integration.store.locks import let_interactive_writes_through
from integration.store.quarantine import close_absent
from integration.store.queries import latest_raw_id, mapped_from_files
from integration.store.raw import (
    IncomingResource,
    Rejected,
    WriteOutcome,
    write_rejections,
    write_resources,
)
from mappings.rulepack import RulePack

log = logging.getLogger(__name__)
UNREADABLE = "(unreadable)"
NO_TYPE = "(no resourceType)"
EXAMPLES_KEPT = 20
GROWN_TABLES = ("raw_resources", "current_resources", "quarantine")


@dataclass(slots=True)
class TypeCounts:
    new: int = 0
    changed: int = 0
    unchanged: int = 0
    quarantined: int = 0
    warnings: int = 0

    @property
    def imported(self) -> int:
        return self.new + self.changed


@dataclass(frozen=True, slots=True)
class IngestProblem:
    """One rejected item, for the summary: where it was, what, and why."""

    origin: str | None
    location: str | None
    resource_type: str | None
    resource_id: str | None
    fhir_path: str | None
    error: str

    def __str__(self) -> str:
        what = resource_label(self.resource_type, self.resource_id)
        where = ", ".join(part for part in (self.origin, self.location) if part)
        path = f" at {self.fhir_path}" if self.fhir_path else ""
        return f"{where}: {what + ' ' if what else ''}rejected{path}: {self.error}"


@dataclass(slots=True)
class IngestSummary:
    source: str
    files: int = 0
    by_type: dict[str, TypeCounts] = field(default_factory=lambda: defaultdict(TypeCounts))
    problems: list[IngestProblem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    derive: JourneyUpdate = field(default_factory=JourneyUpdate)
    orphan_count: int = 0
    orphans: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def total(self, attribute: str) -> int:
        return sum(int(getattr(counts, attribute)) for counts in self.by_type.values())


class IngestPipeline:
    """Imports files for one source into the store."""

    def __init__(
        self,
        engine: Engine,
        pack: RulePack,
        source: str,
        max_resource_bytes: int,
        batch_size: int = 500,
        validate: bool = True,
        processes: int = 0,
        store_batch_size: int | None = None,
        max_depth: int = DEFAULT_MAX_DEPTH,
        bulk_copy: bool = True,
    ) -> None:
        """`batch_size` resources are mapped per derivation round, and stored per
        transaction unless `store_batch_size` says otherwise (files: larger batches).
        `validate=False` is for trusted sources: only resourceType and id are checked.
        `processes` > 0 takes in with that many worker processes (`store`): validation,
        or for a trusted source parsing and hashing, which leaves this process only
        reading and the store (500k resources trusted: 41k/s against 31k/s in-process,
        once batches of 5,000 and one lookup per batch made the store cheaper).
        `max_depth` bounds a resource's nesting (JOURNEY_MAX_RESOURCE_DEPTH).
        `bulk_copy`: a trusted source's batches go in with COPY on PostgreSQL
        (`integration.store.bulk_copy`; JOURNEY_TRUSTED_BULK_COPY); the same rows,
        for a fraction of the row-by-row statements' time."""
        if not is_source_name(source):
            raise ConfigError(f"source name {source!r}: must be {SOURCE_NAME_RULE}")
        self.engine = engine
        self.pack = pack
        self.source = source
        self.max_resource_bytes = max_resource_bytes
        self.batch_size = batch_size
        self.store_batch_size = store_batch_size or batch_size
        self.validate = validate
        self.processes = processes
        self.max_depth = max_depth
        # Only unvalidated batches: their store is the import's cost, where validation's
        # dwarfs it; and only PostgreSQL has COPY.
        self.by_copy = bulk_copy and not validate and copy_supported(engine)
        # While the worker processes validate the next batches, this process would
        # only wait for them: on SQLite it maps what is stored meanwhile. Measured on
        # 60,000 resources: 27.3-27.7 s end to end against 30.8-32.0 s mapping after
        # the storing. Not where it measured slower: a trusted import's store is this
        # process's whole work, and its mapping the rest of the wall time (18.8-21.9 s
        # after against 19.6-26.3 s with rounds); on PostgreSQL the server's own
        # processes want the cores too (30,000 validated: 30.4-35.3 s after against
        # 36.7-38.8 s with rounds).
        self.derives_while_storing = (
            validate and processes > 0 and engine.url.get_backend_name() == "sqlite"
        )
        self._write_lock = threading.Lock()
        self._growth = GrowingTables(engine, GROWN_TABLES)
        # One pool for every file this pipeline stores, even several at once (a Bulk
        # export's files download in parallel): started when first needed, by `close`.
        self._pool: IntakePool | None = None
        self._pool_lock = threading.Lock()
        # Quarantine keys met per file, to close the entries of content no longer in it.
        self._quarantined: dict[str, set[str]] = defaultdict(set)
        # `run` reads files whole; a sync or Bulk download stores pages and parts.
        self._reading_files = False
        # Whether rounds mapped while storing since `begin_rounds` (then the mapping
        # counts are recounted), and whether one failed (then no more run). One round
        # at a time: files stored at once (a Bulk export's) skip a round while another
        # file's storing is running one.
        self._rounds_run = False
        self._rounds_stopped = False
        self._round_lock = threading.Lock()

    def run(
        self,
        paths: Iterable[str | Path],
        on_bytes: Callable[[int], None] | None = None,
        on_derived: Callable[[int], None] | None = None,
        before_derive: Callable[[], None] | None = None,
    ) -> IngestSummary:
        started = time.perf_counter()
        summary = IngestSummary(self.source)
        files = discover(paths)
        summary.files = len(files)
        reader = FileReader(self.max_resource_bytes, on_bytes)
        self._reading_files = True
        before = self.begin_rounds()
        try:
            self.store(
                (item for path in files for item in reader.read(path, parse=False)),
                summary,
                derive_rounds=self.derives_while_storing,
            )
        finally:
            self.close()
        origins = [str(path) for path in files]
        self._close_absent(origins)
        if before_derive:
            before_derive()
        # What the rounds while storing left (the last batch, at least).
        summary.derive = update_journey(self.engine, self.pack, self.batch_size, on_derived)
        if self.rounds_run:  # even one that failed: it may have committed batches
            summary.derive = self.mapped_now(origins, before)
        # This import's own: not every record of the store still waiting for its Patient.
        count, examples = orphan_records(self.engine, self.source, origins, limit=EXAMPLES_KEPT)
        summary.orphan_count = count
        summary.orphans = [_orphan_message(row) for row in examples]
        summary.seconds = time.perf_counter() - started
        return summary

    def _close_absent(self, origins: list[str]) -> None:
        """Every file was read whole: what it no longer holds is no longer quarantined."""
        now = utc_now()
        with self.engine.begin() as conn:
            for origin in origins:
                close_absent(conn, self.source, origin, self._quarantined.get(origin, set()), now)

    def store(
        self, items: Iterable[RawItem], summary: IngestSummary, derive_rounds: bool = False
    ) -> None:
        """Examine and store items in batches, in their order. With worker processes,
        batch k is stored while the next ones are taken, and with `derive_rounds` what
        is stored is mapped meanwhile (`derives_while_storing`; see `begin_rounds`).
        Safe to call from several threads at once (each batch is accepted and written
        under a lock, and one round maps at a time), which share one pool of worker
        processes until `close`."""
        with batch_collection():
            self._store_all(items, summary, derive_rounds)
        self._growth.finish()

    def begin_rounds(self) -> int:
        """Before storing with `derive_rounds`: forgets earlier rounds, and returns the
        newest raw row id, for `mapped_now` once the storing and mapping are done.

        With anything already waiting to be mapped (a run killed before its mapping,
        another source's backlog), no round runs: a round maps the store's whole
        backlog, and `mapped_now` would count only what this run stored, leaving the
        rest (and its mapping failures) out of the summary. The mapping after the
        storing counts it all, as a one-pass mapping does."""
        with self.engine.connect() as conn:
            backlog = anything_pending(conn)
            before = latest_raw_id(conn)
        self._rounds_run = False
        self._rounds_stopped = backlog
        return before

    @property
    def rounds_run(self) -> bool:
        """Whether a round mapped (or tried to) since `begin_rounds`."""
        return self._rounds_run

    def mapped_now(self, origins: list[str], before: int) -> JourneyUpdate:
        """After rounds, the summary's mapping counts as the store holds them: a sum of
        what each round did would count what a later round redid. An instrument
        total stored before its response is a record of its own until the response
        comes (then shown with it); an Encounter is mapped again when evidence naming it
        comes in a later batch, and a failing one is isolated again."""
        with self.engine.connect() as conn:
            now = mapped_from_files(conn, self.source, origins, before, derived_types())
        return JourneyUpdate(
            people_linked=now.people_linked,
            records_by_job=now.records_by_job,
            resources=now.resources,
            mapping_failures=now.mapping_failures,
        )

    def _store_all(
        self, items: Iterable[RawItem], summary: IngestSummary, derive_rounds: bool
    ) -> None:
        chunks = _chunks(items, self.store_batch_size)
        # Worker processes take a second or so to start: only worth it past two batches.
        first = list(itertools.islice(chunks, 2))
        if self.processes < 1 or len(first) < 2:
            for chunk in itertools.chain(first, chunks):
                self._store_batch(chunk, None, summary)
            if not first:
                self._store_batch([], None, summary)
            return
        pool = self._intake_pool()
        in_flight: deque[tuple[list[RawItem], Future[Any]]] = deque()
        try:
            for chunk in itertools.chain(first, chunks):
                payloads = [
                    (
                        item.raw if item.raw is not None else json_bytes(item.resource),
                        item.fallback_id,
                    )
                    for item in chunk
                    if _for_pool(item)
                ]
                in_flight.append((chunk, pool.submit(payloads)))
                # Enough batches queued to keep every worker busy, and no more (memory).
                while len(in_flight) > self.processes + 1:
                    done, future = in_flight.popleft()
                    self._store_batch(done, IntakePool.results(future), summary)
                    if derive_rounds:
                        derive_rounds = self._derive_round()
            while in_flight:
                done, future = in_flight.popleft()
                self._store_batch(done, IntakePool.results(future), summary)
                if derive_rounds and in_flight:  # the last: mapped by `run`, with progress
                    derive_rounds = self._derive_round()
        finally:
            for _, future in in_flight:  # left by an error: the pool is shared
                future.cancel()

    def _derive_round(self) -> bool:
        """Map what is stored by now, while the workers take the next batches in (see
        `derives_while_storing`); False if the round failed, and no more rounds are to
        run. Skipped while another thread's storing is running one: the next stored
        batch tries again. Not counted: once rounds ran, `mapped_now` counts what they
        left in the store."""
        if self._rounds_stopped:
            return False
        if not self._round_lock.acquire(blocking=False):
            return True
        try:
            if self._rounds_stopped:  # by the round that held the lock
                return False
            self._rounds_run = True
            update_journey(self.engine, self.pack, self.batch_size)
        except Exception as exc:
            self._rounds_stopped = True
            # The files are stored first, whatever mapping meets: what the round did not
            # reach stays flagged, for the mapping once they are stored, which raises
            # the error again if it is the store's.
            log.warning(
                "mapping while storing stopped (%s): the rest is mapped once the files are stored",
                describe_error(exc),
            )
            return False
        finally:
            self._round_lock.release()
        return True

    def _intake_pool(self) -> IntakePool:
        with self._pool_lock:
            if self._pool is None:
                self._pool = IntakePool(self.processes, self.validate, self.max_depth)
            return self._pool

    def close(self) -> None:
        """Stop the worker processes, if any were started (`store` starts them)."""
        with self._pool_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()

    def _store_batch(
        self,
        batch: list[RawItem],
        results: list[IntakeResult | None] | None,
        summary: IngestSummary,
    ) -> None:
        """Accept and write one batch. `results` (from the pool) has one entry per item
        to take in; None where a line is not one plain resource and is parsed here."""
        given = iter(results) if results is not None else None
        with self._write_lock:
            accepted: list[tuple[str, IncomingResource | Rejected]] = []
            for item in batch:
                result = next(given) if given is not None and _for_pool(item) else None
                if not item.parsed and result is None:
                    accepted.extend(self.intake(each, summary) for each in parse_line(item))
                else:
                    accepted.append(self.intake(item, summary, result))
            self.write(accepted, summary)

    def intake(
        self, item: RawItem, summary: IngestSummary, result: IntakeResult | None = None
    ) -> tuple[str, IncomingResource | Rejected]:
        """One item, taken here unless a result from a worker process comes with it
        (an item read unparsed comes with one)."""
        if item.problem is not None or (item.parsed and item.resource is None):
            resource_type, resource_id = _type_and_id(item.resource)
            resource_id = resource_id or item.fallback_id
            return resource_type or UNREADABLE, Rejected(
                self.source,
                item.origin,
                item.location,
                item.problem or "unreadable",
                resource_type=resource_type,
                resource_id=resource_id,
                content=item.raw,
                content_truncated=item.raw_truncated,
                in_file=self._reading_files,
            )
        try:
            if isinstance(result, ResourceRejected):
                raise result
            if result is None:
                if item.resource is None:
                    raise ValueError(f"{item.origin}, {item.location}: read unparsed, not taken")
                result = intake(
                    item.resource, item.fallback_id, self.validate, self.max_depth, item.raw
                )
        except ResourceRejected as rejected:
            return self._rejected(item, rejected)
        taken = result
        content = (
            item.raw.decode("utf-8")
            if item.raw is not None
            else orjson.dumps(item.resource).decode()
        )
        if taken.warnings:
            summary.by_type[taken.resource_type].warnings += len(taken.warnings)
            for warning in taken.warnings:
                if len(summary.warnings) < EXAMPLES_KEPT:
                    summary.warnings.append(f"{item.origin}, {item.location}: {warning}")
        return taken.resource_type, IncomingResource(
            source=self.source,
            resource_type=taken.resource_type,
            resource_id=taken.resource_id,
            version_key=taken.version_key,
            last_updated=taken.last_updated,
            subject_id=taken.subject_id,
            origin=item.origin,
            location=item.location,
            content=content,
            warnings=taken.warnings,
        )

    def _rejected(
        self, item: RawItem, rejected: ResourceRejected
    ) -> tuple[str, IncomingResource | Rejected]:
        resource = item.resource if item.resource is not None else orjson.loads(item.raw or b"{}")
        raw_type = resource.get("resourceType")
        resource_type, resource_id = _type_and_id(resource)
        type_label = raw_type if isinstance(raw_type, str) and len(raw_type) < 64 else UNREADABLE
        return type_label, Rejected(
            self.source,
            item.origin,
            item.location,
            rejected.message,
            resource_type=resource_type,
            resource_id=resource_id,
            fhir_path=rejected.fhir_path,
            content=item.raw if item.raw is not None else json_bytes(resource),
            in_file=self._reading_files,
        )

    def write(
        self,
        batch: list[tuple[str, IncomingResource | Rejected]],
        summary: IngestSummary,
        also: Callable[[Connection], None] | None = None,
    ) -> None:
        """Store a batch in one transaction; `also` runs in the same transaction
        (a sync saves its checkpoint there, so it never passes unstored data)."""
        if not batch and also is None:
            return
        incoming = [(label, item) for label, item in batch if isinstance(item, IncomingResource)]
        rejected = [(label, item) for label, item in batch if isinstance(item, Rejected)]
        now = utc_now()
        let_interactive_writes_through(self.engine)
        with self.engine.begin() as conn:
            outcomes = write_resources(conn, [item for _, item in incoming], now, self.by_copy)
            write_rejections(conn, [item for _, item in rejected], now)
            if also is not None:
                also(conn)
        self._growth.grew(len(batch))
        for (label, _), outcome in zip(incoming, outcomes, strict=True):
            counts = summary.by_type[label]
            if outcome is WriteOutcome.NEW:
                counts.new += 1
            elif outcome is WriteOutcome.CHANGED:
                counts.changed += 1
            else:
                counts.unchanged += 1
        for label, item in rejected:
            if item.origin is not None:
                self._quarantined[item.origin].add(item.key)
            summary.by_type[label].quarantined += 1
            if len(summary.problems) < EXAMPLES_KEPT:
                summary.problems.append(
                    IngestProblem(
                        item.origin,
                        item.location,
                        item.resource_type,
                        item.resource_id,
                        item.fhir_path,
                        item.error,
                    )
                )


def resource_label(resource_type: str | None, resource_id: str | None) -> str:
    """`Type/id` of a refused resource, saying so where it gave no type; "" for neither."""
    if resource_id is None:
        return resource_type or ""
    return f"{resource_type or NO_TYPE}/{resource_id}"


def _orphan_message(row: dict[str, Any]) -> str:
    where = f"{row['origin']}, {row['location']}: {row['resource_type']}/{row['resource_id']}"
    if row["subject_id"] is None:
        return (
            f"{where} names no subject Patient fhir-journey can read (missing, or a conditional "
            "reference); kept and mapped, but in no journey"
        )
    return (
        f"{where} points to Patient/{row['subject_id']}, not seen yet in source {row['source']}; "
        "kept, and it joins the journey when that Patient arrives"
    )


def _for_pool(item: RawItem) -> bool:
    """Does the item go to the intake pool: a resource, or a line to parse there?"""
    return item.problem is None and (item.resource is not None or not item.parsed)


def _type_and_id(resource: dict[str, Any] | None) -> tuple[str | None, str | None]:
    """A refused resource's type and id as it gave them, cut short, for the quarantine."""
    if resource is None:
        return None, None
    raw_type, raw_id = resource.get("resourceType"), resource.get("id")
    return (
        raw_type[:64] if isinstance(raw_type, str) else None,
        raw_id[:64] if isinstance(raw_id, str) else None,
    )


def _chunks(items: Iterable[RawItem], size: int) -> Iterator[list[RawItem]]:
    iterator = iter(items)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk
