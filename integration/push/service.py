"""What the FHIR write endpoint does with pushed resources: validate, version, store, derive.

Pushed resources take the same road as imported and pulled ones (validation,
raw zone, identity, mapping) under the pushing source's name. The server owns
`versionId` (the raw row id) and `lastUpdated` (the time received). Pushing
the same content again is a no-op that answers with the version already held.
A transaction is all or nothing: every entry is checked before any is stored,
and all are stored in one database transaction. What a push stored (and only
that) is mapped before the answer goes out, so a pushed encounter is in the
journey at once; if mapping cannot keep up, the answer says so and the data
stays stored.

Writes and their mapping are synchronous and serialised by one lock per process,
per transaction or per batch entry (run them in a worker thread).
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import orjson
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from connectors.files import RawItem
from integration.clock import utc_now
from integration.config import Settings
from integration.ingest.errors import ResourceRejected
from integration.ingest.pipeline import IngestPipeline, IngestSummary
from integration.ingest.policy import WayIn, ingest_pipeline
from integration.ingest.validation import check_structure
from integration.journey.update import update_journey
from integration.push.bundle import (
    BundleKind,
    PlannedWrite,
    bundle_kind,
    full_url_targets,
    overlapping,
    plan_entries,
    resolve_references,
    with_references_resolved,
)
from integration.push.errors import FhirError
from integration.push.outcome import Issue
from integration.store.errors import describe_error, describe_store_error, store_unavailable
from integration.store.locks import PUSH, hold, interactive_writes
from integration.store.pushed import (
    PushedIndexEntry,
    StoredVersion,
    current_version,
    current_versions,
    ids_by_content,
    ids_by_identifier,
    replace_index_entries,
    version,
)
from integration.store.raw import IncomingResource, Rejected, WriteOutcome, write_resources
from mappings.rulepack import RulePack

log = logging.getLogger(__name__)
# Entries of a batch Bundle written before they are mapped together: few enough that
# another client waits for no more than their mapping.
BATCH_MAPPING_CHUNK = 25
# Server-owned: left out of the content hash that decides "the same content again".
_SERVER_META = ("versionId", "lastUpdated")


@dataclass(slots=True)
class WriteResult:
    """One entry's answer: status line, the version now held, and any warnings."""

    status: int
    stored: StoredVersion
    created: bool
    unchanged: bool = False
    warnings: list[Issue] = field(default_factory=list)

    @property
    def status_line(self) -> str:
        return {200: "200 OK", 201: "201 Created"}[self.status]

    @property
    def location(self) -> str:
        stored = self.stored
        return f"{stored.resource_type}/{stored.resource_id}/_history/{stored.version_id}"

    @property
    def etag(self) -> str:
        return f'W/"{self.stored.version_id}"'


def with_server_meta(stored: StoredVersion) -> dict[str, Any]:
    """The resource as the server holds it: content plus our versionId and lastUpdated."""
    resource: dict[str, Any] = orjson.loads(stored.content)
    meta = resource.get("meta")
    resource["meta"] = {
        **(meta if isinstance(meta, dict) else {}),
        "versionId": stored.version_id,
        "lastUpdated": stored.received_at,
    }
    return resource


def content_hash(resource: dict[str, Any]) -> str:
    """Hash of the content without id and server-owned meta: equal for a repeated push."""
    meta = resource.get("meta")
    content = {k: v for k, v in resource.items() if k not in ("id", "meta")}
    if isinstance(meta, dict):
        kept = {k: v for k, v in meta.items() if k not in _SERVER_META}
        if kept:
            content["meta"] = kept
    canonical = orjson.dumps(content, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(canonical).hexdigest()[:40]


def parse_etag(value: str) -> str:
    """`W/"3"` or `"3"` -> `3`."""
    return value.strip().removeprefix("W/").strip('"')


class PushService:
    def __init__(
        self,
        engine: Engine,
        pack: RulePack,
        settings: Settings,
    ) -> None:
        self.engine = engine
        self.pack = pack
        self.settings = settings
        self.max_resource_bytes = settings.max_resource_bytes
        self.max_depth = settings.max_resource_depth
        self._lock = FairLock()
        # One pipeline per pushing source, for the life of the service.
        self._pipelines: dict[str, IngestPipeline] = {}

    def _pipeline(self, source: str) -> IngestPipeline:
        pipeline = self._pipelines.get(source)
        if pipeline is None:
            pipeline = ingest_pipeline(self.engine, self.pack, self.settings, source, WayIn.PUSH)
            self._pipelines[source] = pipeline
        return pipeline

    # ---- reads ----

    def read(self, source: str, resource_type: str, resource_id: str) -> StoredVersion:
        with self.engine.connect() as conn:
            stored = current_version(conn, source, resource_type, resource_id)
        if stored is None:
            raise FhirError(404, "not-found", f"{resource_type}/{resource_id} is not known here")
        return stored

    def vread(
        self, source: str, resource_type: str, resource_id: str, version_id: str
    ) -> StoredVersion:
        with self.engine.connect() as conn:
            stored = version(conn, source, resource_type, resource_id, version_id)
        if stored is None:
            raise FhirError(
                404,
                "not-found",
                f"{resource_type}/{resource_id} has no version {version_id} here",
            )
        return stored

    def search_ids(self, source: str, resource_type: str, query: str) -> list[str]:
        """Ids matching a search of `identifier` and/or `_id` (what conditional creates use)."""
        with self.engine.connect() as conn:
            return _search_ids(conn, source, resource_type, query)

    # ---- writes ----

    def write_one(self, source: str, write: PlannedWrite) -> WriteResult:
        self._check_limits(write, in_bundle=False)
        with interactive_writes(self.engine), self._lock:
            results = self._write_all(source, [write], in_bundle=False)
            self._map_written(source, results)
        result = results[0]
        assert isinstance(result, WriteResult)
        return result

    def process_bundle(
        self, source: str, bundle: dict[str, Any]
    ) -> tuple[BundleKind, list[WriteResult | FhirError]]:
        kind = bundle_kind(bundle)
        planned = [
            self._within_limits(item) for item in overlapping(kind, plan_entries(bundle, new_id))
        ]
        with interactive_writes(self.engine):
            return kind, self._write_planned(source, kind, planned)

    def _write_planned(
        self, source: str, kind: BundleKind, planned: list[PlannedWrite | FhirError]
    ) -> list[WriteResult | FhirError]:
        results: list[WriteResult | FhirError] = []
        if kind == "transaction":
            for item in planned:
                if isinstance(item, FhirError):
                    raise item
            writes = [item for item in planned if isinstance(item, PlannedWrite)]
            with self._lock:
                results = self._write_all(source, writes)
                self._map_written(source, results)
            return results
        # A batch's entries are independent: each succeeds or fails alone, and takes the
        # lock for itself only (and mapping a few entries at a time), so other clients'
        # pushes go between them.
        for start in range(0, len(planned), BATCH_MAPPING_CHUNK):
            chunk: list[WriteResult | FhirError] = []
            for item in planned[start : start + BATCH_MAPPING_CHUNK]:
                if isinstance(item, FhirError):
                    chunk.append(item)
                    continue
                try:
                    with self._lock:
                        chunk.extend(self._write_all(source, [item]))
                except FhirError as error:
                    chunk.append(error)
                except SQLAlchemyError as exc:
                    # This entry's transaction rolled back; those before it stay written
                    # and are mapped below, those after it are still tried.
                    chunk.append(_store_failure(item, exc))
            with self._lock:
                self._map_written(source, chunk)
            results.extend(chunk)
        return results

    def _map_written(self, source: str, results: list[WriteResult | FhirError]) -> None:
        """Map what this push stored, and only that: a push never waits for the rest of
        the store's backlog (an import's, another source's). Under the push lock, like
        the writes: threads of one process taking turns through SQLite's busy handler
        (which polls) made a slow tail (p99 0.85 -> 1.65 s with 8 clients). Mapping
        failing or the store refusing it now never fails the push: its data is stored,
        and the answer says mapping lags."""
        written = [
            (source, r.stored.resource_type, r.stored.resource_id)
            for r in results
            if isinstance(r, WriteResult) and not r.unchanged
        ]
        if not written:
            return
        try:
            update_journey(self.engine, self.pack, only=written)
        except Exception as exc:
            failure = describe_error(exc)
            log.warning("mapping after a push from %s lags: %s", source, failure)
            lag = Issue(
                "warning",
                "transient",
                "stored, but the journey is not updated yet: mapping lags "
                f"({failure}); it catches up with the next mapping run "
                "(`journey worker`, an import, a sync or `journey remap`)",
            )
            for result in results:
                if isinstance(result, WriteResult) and not result.unchanged:
                    result.warnings.append(lag)

    def _within_limits(self, item: PlannedWrite | FhirError) -> PlannedWrite | FhirError:
        if isinstance(item, FhirError):
            return item
        try:
            self._check_limits(item, in_bundle=True)
        except FhirError as error:
            return error
        return item

    def _check_limits(self, write: PlannedWrite, in_bundle: bool) -> None:
        """Nesting, NUL characters and size, before anything hashes, stores or looks the
        resource up: what comes after recurses, and PostgreSQL cannot hold a NUL. The body
        limit (JOURNEY_MAX_PUSH_BYTES) is for a whole Bundle; each resource has its own."""
        try:
            check_structure(write.resource, self.max_depth)
        except ResourceRejected as rejected:
            raise _entry_error(
                write,
                in_bundle,
                FhirError(
                    400,
                    "invalid",
                    f"{rejected.fhir_path}: {rejected.message}",
                    rejected.fhir_path,
                ),
            ) from None
        size = len(orjson.dumps(write.resource))
        if size > self.max_resource_bytes:
            raise _entry_error(
                write,
                in_bundle,
                FhirError(
                    413,
                    "too-costly",
                    f"the {write.resource_type} is {size} bytes, over the "
                    f"{self.max_resource_bytes}-byte limit for one resource "
                    "(JOURNEY_MAX_RESOURCE_BYTES)",
                    write.resource_type,
                ),
            )

    def _write_all(
        self, source: str, writes: list[PlannedWrite], in_bundle: bool = True
    ) -> list[WriteResult | FhirError]:
        """Check every write, then store them all in one transaction, then derive."""
        now = utc_now()
        pipeline = self._pipeline(source)
        summary = IngestSummary(source)
        existing: dict[int, StoredVersion] = {}
        with self.engine.begin() as conn:
            # Checks (If-None-Exist, repeated creates, If-Match) and writes, one push at
            # a time across processes: otherwise two could both find no match and create.
            hold(conn, PUSH, now)
            for write in writes:
                if write.if_none_exist is not None:
                    matches = self._matches(conn, source, write)
                    if len(matches) > 1:
                        raise _entry_error(
                            write,
                            in_bundle,
                            FhirError(
                                412,
                                "duplicate",
                                "If-None-Exist matches more than one resource",
                                "ifNoneExist",
                            ),
                        )
                    if matches:
                        write.resource_id = matches[0].resource_id
                        existing[write.index] = matches[0]
            targets = full_url_targets(writes)
            # Repeated creates are found by content; look all up at once, as their
            # references will resolve (an entry matched below may still change that).
            creates = [w for w in writes if w.method == "POST" and w.index not in existing]
            looked_up = {
                (w.resource_type, content_hash(with_references_resolved(w.resource, targets)))
                for w in creates
            }
            held_content = ids_by_content(conn, source, sorted(looked_up))
            incoming: list[tuple[PlannedWrite, IncomingResource]] = []
            for write in writes:
                if write.index in existing:
                    continue
                try:
                    resolve_references(write, targets)
                    if write.method == "POST":
                        same = self._same_content(conn, source, write, looked_up, held_content)
                        if same is not None:
                            # A repeated create: answer with what is held, do not duplicate.
                            write.resource_id = same.resource_id
                            if write.full_url:
                                targets[write.full_url] = (
                                    f"{write.resource_type}/{same.resource_id}"
                                )
                            existing[write.index] = same
                            continue
                    # A server-assigned id is new by construction: nothing to look up.
                    current = (
                        None
                        if write.method == "POST"
                        else current_version(conn, source, write.resource_type, write.resource_id)
                    )
                    _check_if_match(write, current)
                    item = self._validated(pipeline, summary, write, now)
                except FhirError as error:
                    raise _entry_error(write, in_bundle, error) from None
                if current is not None and current.version_key.startswith(
                    item.version_key.split("@")[0]
                ):
                    existing[write.index] = current  # same content again: nothing to store
                    continue
                incoming.append((write, item))
            written = {f"{w.resource_type}/{w.resource_id}" for w in writes}
            warnings = {
                write.index: self._reference_warnings(conn, source, write, written)
                for write, _ in incoming
            }
            results: dict[int, WriteResult] = {}
            outcomes = write_resources(conn, [item for _, item in incoming], now)
            replace_index_entries(
                conn,
                source,
                [
                    PushedIndexEntry(
                        write.resource_type,
                        write.resource_id,
                        content_hash(write.resource),
                        _identifiers(write),
                    )
                    for write, _ in incoming
                ],
            )
            held = current_versions(
                conn, source, [(write.resource_type, write.resource_id) for write, _ in incoming]
            )
            for (write, item), outcome in zip(incoming, outcomes, strict=True):
                item_warnings = [
                    Issue("warning", "informational", text) for text in item.warnings
                ] + warnings[write.index]
                created = outcome is WriteOutcome.NEW
                results[write.index] = WriteResult(
                    201 if created else 200,
                    held[(write.resource_type, write.resource_id)],
                    created,
                    warnings=item_warnings,
                )
        for index, stored in existing.items():
            results[index] = WriteResult(
                200,
                stored,
                False,
                unchanged=True,
                warnings=[
                    Issue(
                        "information",
                        "informational",
                        "already held with the same content: nothing changed",
                    )
                ],
            )
        return [results[write.index] for write in writes]

    def _matches(self, conn: Connection, source: str, write: PlannedWrite) -> list[StoredVersion]:
        assert write.if_none_exist is not None
        # In the push's own transaction, which holds the push lock.
        ids = _search_ids(conn, source, write.resource_type, write.if_none_exist)
        found = [current_version(conn, source, write.resource_type, rid) for rid in ids]
        return [stored for stored in found if stored is not None]

    @staticmethod
    def _same_content(
        conn: Connection,
        source: str,
        write: PlannedWrite,
        looked_up: set[tuple[str, str]],
        held_content: dict[tuple[str, str], list[str]],
    ) -> StoredVersion | None:
        key = (write.resource_type, content_hash(write.resource))
        if key not in looked_up:
            held_content.update(ids_by_content(conn, source, [key]))
        for resource_id in held_content.get(key, []):
            stored = current_version(conn, source, write.resource_type, resource_id)
            if stored is not None:
                return stored
        return None

    @staticmethod
    def _validated(
        pipeline: IngestPipeline, summary: IngestSummary, write: PlannedWrite, now: str
    ) -> IncomingResource:
        write.resource["id"] = write.resource_id
        where = f"entry {write.index}"
        # With its JSON at hand, intake's structure check (already walked in
        # `_check_limits`) is two byte scans, and the stored content is these bytes.
        item = RawItem("push", where, resource=write.resource, raw=orjson.dumps(write.resource))
        label, accepted = pipeline.intake(item, summary)
        if isinstance(accepted, Rejected):
            raise FhirError(
                422,
                "processing",
                f"{accepted.fhir_path or label}: {accepted.error}",
                accepted.fhir_path,
            )
        # The server versions pushed resources: by content, so a repeat is recognised.
        return dataclasses.replace(
            accepted,
            version_key=f"p:{content_hash(write.resource)}@{now}",
            last_updated=now,
        )

    @staticmethod
    def _reference_warnings(
        conn: Connection, source: str, write: PlannedWrite, in_bundle: set[str]
    ) -> list[Issue]:
        subject = write.resource.get("subject")
        reference = subject.get("reference") if isinstance(subject, dict) else None
        if write.resource_type == "Patient" or not isinstance(reference, str):
            return []
        if not reference.startswith("Patient/") or reference in in_bundle:
            return []
        patient_id = reference.removeprefix("Patient/")
        if current_version(conn, source, "Patient", patient_id) is not None:
            return []
        return [
            Issue(
                "warning",
                "not-found",
                f"{write.resource_type}.subject: {reference} is not here yet; the "
                f"{write.resource_type} is kept and joins the journey when that Patient arrives",
                f"{write.resource_type}.subject",
            )
        ]


def _search_ids(conn: Connection, source: str, resource_type: str, query: str) -> list[str]:
    params = parse_qsl(query, keep_blank_values=True)
    if not params:
        raise FhirError(400, "invalid", "a search needs at least one parameter")
    for name, value in params:
        # Looked up in the store, which cannot hold a NUL (PostgreSQL refuses it).
        if "\x00" in name + value:
            raise FhirError(400, "invalid", "a search parameter contains a NUL character (U+0000)")
    found: set[str] | None = None
    for name, value in params:
        if name == "_id":
            stored = current_version(conn, source, resource_type, value)
            ids = {value} if stored is not None else set()
        elif name == "identifier":
            system, sep, code = value.rpartition("|")
            ids = set(ids_by_identifier(conn, source, resource_type, system if sep else None, code))
        elif name in ("_count", "_format"):
            continue
        else:
            raise FhirError(
                400,
                "not-supported",
                f"search parameter {name!r} is not supported (identifier and _id are)",
                name,
            )
        found = ids if found is None else found & ids
    return sorted(found or set())


def _store_failure(write: PlannedWrite, exc: SQLAlchemyError) -> FhirError:
    """A batch entry the store did not take: 503 when the store is away (retry it),
    500 when it refused this entry's data; never a value from it."""
    where = f"Bundle.entry[{write.index}] ({write.resource_type})"
    if store_unavailable(exc):
        return FhirError(
            503, "transient", f"{where}: the store is busy or unreachable; not written, retry it"
        )
    refused = describe_store_error(exc)
    log.error("push entry %s refused by the store: %s", write.index, refused)
    return FhirError(500, "exception", f"{where}: the store refused it ({refused})")


class FairLock:
    """A lock taken in the order it was asked for. threading.Lock is not: a batch that
    releases it after each entry and asks again at once kept winning, and another
    client's one-Patient push waited out the whole batch."""

    def __init__(self) -> None:
        self._turns = threading.Condition()
        self._next_ticket = 0
        self._serving = 0

    def __enter__(self) -> None:
        with self._turns:
            ticket = self._next_ticket
            self._next_ticket += 1
            self._turns.wait_for(lambda: self._serving == ticket)

    def __exit__(self, *_exc: object) -> None:
        with self._turns:
            self._serving += 1
            self._turns.notify_all()


def new_id() -> str:
    return str(uuid.uuid4())


def _check_if_match(write: PlannedWrite, current: StoredVersion | None) -> None:
    if write.if_match is None:
        return
    wanted = parse_etag(write.if_match)
    if current is None or current.version_id != wanted:
        held = f"version {current.version_id}" if current else "no version"
        raise FhirError(
            412,
            "conflict",
            f"If-Match asked for version {wanted} of {write.resource_type}/{write.resource_id}; "
            f"the server holds {held}",
        )


def _entry_error(write: PlannedWrite, in_bundle: bool, error: FhirError) -> FhirError:
    """Say which entry failed (inside a Bundle); the status stays the entry's own."""
    if not in_bundle:
        return error
    error.issue = dataclasses.replace(
        error.issue,
        diagnostics=f"Bundle.entry[{write.index}] ({write.resource_type}): "
        f"{error.issue.diagnostics}",
    )
    return error


def _identifiers(write: PlannedWrite) -> tuple[tuple[str, str], ...]:
    found: list[tuple[str, str]] = []
    identifiers = write.resource.get("identifier")
    if isinstance(identifiers, dict):
        identifiers = [identifiers]
    for identifier in identifiers if isinstance(identifiers, list) else []:
        if isinstance(identifier, dict) and isinstance(identifier.get("value"), str):
            system = identifier.get("system")
            found.append(
                (system[:400] if isinstance(system, str) else "", identifier["value"][:200])
            )
    return tuple(found)
