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

Deletes are versions too: DELETE stores a deletion (the resource's tombstone) and
the journey lets go of what the resource put in it. A deletion is remembered, also
of a resource this source never sent (a delete overtaking its create): a create or
update whose own `meta.lastUpdated` is at or before the deletion arrives as history
and leaves the resource deleted; one without `meta.lastUpdated`, or later, creates
it again (FHIR: a PUT brings a deleted resource back).

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
from integration.ingest.intake import last_updated_of
from integration.ingest.pipeline import IngestPipeline, IngestSummary
from integration.ingest.policy import WayIn, ingest_pipeline
from integration.ingest.validation import check_structure
from integration.journey.update import derive_written, update_journey
from integration.push.bundle import (
    BundleKind,
    Planned,
    PlannedDelete,
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
from integration.store.derivation import CurrentResource, ResourceKey
from integration.store.errors import describe_error, describe_store_error, store_unavailable
from integration.store.locks import PUSH, hold, interactive_writes
from integration.store.pushed import (
    PushedIndexEntry,
    StoredVersion,
    current_version,
    current_versions,
    drop_index_entries,
    held_by_another_source,
    history,
    ids_by_content,
    ids_by_identifier,
    replace_index_entries,
    version,
    version_by_key,
)
from integration.store.raw import (
    DERIVED_TYPES,
    IncomingResource,
    Rejected,
    WriteOutcome,
    lift_deletions,
    write_resources,
)
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
    # Stored in the resource's history only: it is no newer than the resource's
    # deletion, which stays (`stored` is this version, not the current one).
    kept_as_history: bool = False

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


@dataclass(slots=True)
class DeleteResult:
    """One delete's answer: what was deleted (if anything is held as deleted now), and
    whether this request deleted it. Always 200 (204 without a body): FHIR's answer
    to deleting, deleting again, and deleting what is not there."""

    resource_type: str
    resource_id: str | None
    # The deletion now held (None: a conditional delete that found nothing).
    deletion: StoredVersion | None
    changed: bool
    message: str
    status: int = 200
    warnings: list[Issue] = field(default_factory=list)

    @property
    def status_line(self) -> str:
        return "200 OK"

    @property
    def etag(self) -> str | None:
        return f'W/"{self.deletion.version_id}"' if self.deletion else None

    @property
    def issues(self) -> list[Issue]:
        return [Issue("information", "informational", self.message), *self.warnings]


Answer = WriteResult | DeleteResult


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
        if stored.deleted:
            raise _gone(stored)
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
        if stored.deleted:
            raise _gone(stored)
        return stored

    def search_ids(self, source: str, resource_type: str, query: str) -> list[str]:
        """Ids matching a search of `identifier` and/or `_id` (what conditional creates use)."""
        with self.engine.connect() as conn:
            return _search_ids(conn, source, resource_type, query)

    def history(
        self, source: str, resource_type: str, resource_id: str, limit: int
    ) -> list[StoredVersion]:
        """A resource's versions, its deletions among them, newest first; 404 when the
        source holds none."""
        with self.engine.connect() as conn:
            versions = history(conn, source, resource_type, resource_id, limit)
        if not versions:
            raise FhirError(404, "not-found", f"{resource_type}/{resource_id} is not known here")
        return versions

    # ---- writes ----

    def write_one(self, source: str, write: PlannedWrite) -> WriteResult:
        self._check_limits(write, in_bundle=False)
        with interactive_writes(self.engine), self._lock:
            results, derived = self._write_all(source, [write], in_bundle=False, derive=True)
            if not derived:
                self._map_written(source, results)
        result = results[0]
        assert isinstance(result, WriteResult)
        return result

    def delete_one(self, source: str, delete: PlannedDelete) -> DeleteResult:
        """DELETE Type/id, or Type?search (conditional: the one resource it finds)."""
        with interactive_writes(self.engine), self._lock:
            results, derived = self._write_all(source, [delete], in_bundle=False, derive=True)
            if not derived:
                self._map_written(source, results)
        result = results[0]
        assert isinstance(result, DeleteResult)
        return result

    def process_bundle(
        self, source: str, bundle: dict[str, Any]
    ) -> tuple[BundleKind, list[Answer | FhirError]]:
        kind = bundle_kind(bundle)
        planned = [
            self._within_limits(item) for item in overlapping(kind, plan_entries(bundle, new_id))
        ]
        with interactive_writes(self.engine):
            return kind, self._write_planned(source, kind, planned)

    def _write_planned(
        self, source: str, kind: BundleKind, planned: list[Planned | FhirError]
    ) -> list[Answer | FhirError]:
        results: list[Answer | FhirError] = []
        if kind == "transaction":
            writes: list[Planned] = []
            for item in planned:
                if isinstance(item, FhirError):
                    raise item
                writes.append(item)
            with self._lock:
                results, derived = self._write_all(source, writes, derive=True)
                if not derived:
                    self._map_written(source, results)
            return results
        # A batch's entries are independent: each succeeds or fails alone, and takes the
        # lock for itself only (and mapping a few entries at a time), so other clients'
        # pushes go between them.
        for start in range(0, len(planned), BATCH_MAPPING_CHUNK):
            chunk: list[Answer | FhirError] = []
            for item in planned[start : start + BATCH_MAPPING_CHUNK]:
                if isinstance(item, FhirError):
                    chunk.append(item)
                    continue
                try:
                    with self._lock:
                        chunk.extend(self._write_all(source, [item])[0])
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

    def _map_written(self, source: str, results: list[Answer | FhirError]) -> None:
        """Map what this push stored, and only that: a push never waits for the rest of
        the store's backlog (an import's, another source's). Under the push lock, like
        the writes: threads of one process taking turns through SQLite's busy handler
        (which polls) made a slow tail (p99 0.85 -> 1.65 s with 8 clients). Mapping
        failing or the store refusing it now never fails the push: its data is stored,
        and the answer says mapping lags."""
        written = [
            (source, r.stored.resource_type, r.stored.resource_id)
            for r in results
            if isinstance(r, WriteResult) and not r.unchanged and not r.kept_as_history
        ] + [
            (source, r.resource_type, r.resource_id)
            for r in results
            if isinstance(r, DeleteResult) and r.changed and r.resource_id is not None
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
                if (isinstance(result, WriteResult) and not result.unchanged) or (
                    isinstance(result, DeleteResult) and result.changed
                ):
                    result.warnings.append(lag)

    def _within_limits(self, item: Planned | FhirError) -> Planned | FhirError:
        if not isinstance(item, PlannedWrite):
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
        self, source: str, planned: list[Planned], in_bundle: bool = True, derive: bool = False
    ) -> tuple[list[Answer | FhirError], bool]:
        """Check every write and delete, then store them all in one transaction (deletes
        first, as FHIR orders a transaction's entries). With `derive`, what was written
        is derived in that transaction too, from the resources in memory; the second
        value says whether it was (if not, `_map_written` maps it after)."""
        now = utc_now()
        pipeline = self._pipeline(source)
        summary = IngestSummary(source)
        existing: dict[int, StoredVersion] = {}
        writes = [item for item in planned if isinstance(item, PlannedWrite)]
        deletes = [item for item in planned if isinstance(item, PlannedDelete)]
        with self.engine.begin() as conn:
            # Checks (If-None-Exist, repeated creates, If-Match) and writes, one push at
            # a time across processes: otherwise two could both find no match and create.
            hold(conn, PUSH, now)
            deleted: dict[int, DeleteResult] = {}
            was_held: set[int] = set()
            tombstones: list[tuple[PlannedDelete, IncomingResource]] = []
            for delete in deletes:
                try:
                    checked = self._deletion(conn, source, delete, now)
                except FhirError as error:
                    raise _entry_error(delete, in_bundle, error) from None
                if isinstance(checked, DeleteResult):
                    deleted[delete.index] = checked
                else:
                    tombstones.append((delete, checked))
                    if current_version(conn, source, checked.resource_type, checked.resource_id):
                        was_held.add(delete.index)
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
            # Writes of a deleted resource: those bringing it back, those arriving late.
            revived: list[tuple[str, str]] = []
            late: set[int] = set()
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
                    sent = _made_at(conn, source, write)
                    item = self._validated(pipeline, summary, write, now)
                except FhirError as error:
                    raise _entry_error(write, in_bundle, error) from None
                if current is not None and current.deleted:
                    if _no_newer(sent, current):
                        # Made before the source deleted it: history, the deletion stays.
                        late.add(write.index)
                        item = dataclasses.replace(item, last_updated=sent)
                    else:
                        revived.append((write.resource_type, write.resource_id))
                        # Its own version even if a version before the deletion had
                        # the same content within the same second.
                        item = dataclasses.replace(
                            item, version_key=f"{item.version_key}+{current.version_id}"
                        )
                elif current is not None and current.version_key.startswith(
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
            results: dict[int, Answer] = dict(deleted)
            lift_deletions(conn, source, revived)
            outcomes = write_resources(
                conn, [item for _, item in tombstones] + [item for _, item in incoming], now
            )
            drop_index_entries(
                conn, source, [(item.resource_type, item.resource_id) for _, item in tombstones]
            )
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
                    if write.index not in late
                ],
            )
            held = current_versions(
                conn,
                source,
                [(i.resource_type, i.resource_id) for _, i in tombstones]
                + [(write.resource_type, write.resource_id) for write, _ in incoming],
            )
            for delete, item in tombstones:
                name = f"{item.resource_type}/{item.resource_id}"
                results[delete.index] = DeleteResult(
                    item.resource_type,
                    item.resource_id,
                    held[(item.resource_type, item.resource_id)],
                    True,
                    f"{name} deleted"
                    if delete.index in was_held
                    else f"{name} is not held here: remembered as deleted, so a version "
                    "of it made before now that arrives later stays deleted",
                )
            for (write, item), outcome in zip(incoming, outcomes[len(tombstones) :], strict=True):
                item_warnings = [
                    Issue("warning", "informational", text) for text in item.warnings
                ] + warnings[write.index]
                if write.index in late:
                    deletion = held[(write.resource_type, write.resource_id)]
                    results[write.index] = WriteResult(
                        200,
                        version_by_key(conn, item.raw_key) or deletion,
                        False,
                        warnings=[*item_warnings, _stays_deleted(write, deletion)],
                        kept_as_history=True,
                    )
                    continue
                key = (write.resource_type, write.resource_id)
                created = outcome is WriteOutcome.NEW or key in revived
                results[write.index] = WriteResult(
                    201 if created else 200, held[key], created, warnings=item_warnings
                )
            stored_entries: list[tuple[Planned, IncomingResource]] = [*tombstones, *incoming]
            derivable = [
                (item, outcome)
                for (entry, item), outcome in zip(stored_entries, outcomes, strict=True)
                if entry.index not in late
            ]
            derived = derive and self._derive_written(conn, derivable, held)
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
        return [results[item.index] for item in planned], derived

    def _derive_written(
        self,
        conn: Connection,
        written: list[tuple[IncomingResource, WriteOutcome]],
        held: dict[tuple[str, str], StoredVersion],
    ) -> bool:
        """Derive what this push wrote (deletions, new versions; not one kept only as
        history) in its own transaction: a version now current is derived as held in
        memory; one the store did not make current (an older one arriving, the same
        version again) is read as pending, as `_map_written` would. True also when
        nothing written is of a derived type; False: not derived here (another rule
        pack, or a derivation failed and was rolled back), `_map_written` is to run."""
        in_memory: list[CurrentResource] = []
        stored: list[ResourceKey] = []
        for item, outcome in written:
            if item.resource_type not in DERIVED_TYPES:
                continue  # never flagged for derivation
            key = (item.source, item.resource_type, item.resource_id)
            current = held.get((item.resource_type, item.resource_id))
            if (
                outcome is WriteOutcome.UNCHANGED
                or current is None
                or current.version_key != item.version_key
            ):
                stored.append(key)
                continue
            in_memory.append(
                CurrentResource(
                    item.source,
                    item.resource_type,
                    item.resource_id,
                    item.version_key,
                    orjson.loads(item.content),
                    pending=True,
                    deleted=item.deleted,
                )
            )
        if not in_memory and not stored:
            return True
        return derive_written(conn, self.pack, in_memory, stored) is not None

    def _deletion(
        self, conn: Connection, source: str, delete: PlannedDelete, now: str
    ) -> IncomingResource | DeleteResult:
        """The deletion to store for a DELETE, or the answer when there is nothing to
        store (already deleted; a search that found nothing). Held by another source
        only: 404, for a push key deletes its own source's resources and no one else's."""
        if delete.resource_id is None:
            assert delete.condition is not None
            ids = _search_ids(conn, source, delete.resource_type, delete.condition)
            if len(ids) > 1:
                raise FhirError(
                    412,
                    "multiple-matches",
                    f"the search matches {len(ids)} {delete.resource_type} resources; a "
                    "conditional delete deletes one (conditionalDelete: single): nothing "
                    "deleted",
                )
            if not ids:
                return DeleteResult(
                    delete.resource_type,
                    None,
                    None,
                    False,
                    f"no {delete.resource_type} matches the search: nothing to delete",
                )
            delete.resource_id = ids[0]
        name = f"{delete.resource_type}/{delete.resource_id}"
        current = current_version(conn, source, delete.resource_type, delete.resource_id)
        _check_if_match(delete, current)
        if current is not None and current.deleted:
            return DeleteResult(
                delete.resource_type,
                delete.resource_id,
                current,
                False,
                f"{name} was already deleted: nothing changed",
            )
        if current is None and held_by_another_source(
            conn, source, delete.resource_type, delete.resource_id
        ):
            raise FhirError(404, "not-found", f"{name} is not known here: nothing deleted")
        # At least as new as what it deletes, whatever that version's own time said.
        when = max(now, current.last_updated or now) if current is not None else now
        return IncomingResource(
            source=source,
            resource_type=delete.resource_type,
            resource_id=delete.resource_id,
            version_key=f"d:{new_id()}@{now}",
            last_updated=when,
            subject_id=None,
            origin="push",
            location=f"entry {delete.index}",
            content="{}",
            deleted=True,
        )

    def _matches(self, conn: Connection, source: str, write: PlannedWrite) -> list[StoredVersion]:
        assert write.if_none_exist is not None
        # In the push's own transaction, which holds the push lock.
        ids = _search_ids(conn, source, write.resource_type, write.if_none_exist)
        found = [current_version(conn, source, write.resource_type, rid) for rid in ids]
        return [stored for stored in found if stored is not None and not stored.deleted]

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
            if stored is not None and not stored.deleted:
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
        held = current_version(conn, source, "Patient", patient_id)
        if held is not None and not held.deleted:
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
            ids = {value} if stored is not None and not stored.deleted else set()
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


def _store_failure(write: Planned, exc: SQLAlchemyError) -> FhirError:
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


def _check_if_match(write: Planned, current: StoredVersion | None) -> None:
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


def _entry_error(write: Planned, in_bundle: bool, error: FhirError) -> FhirError:
    """Say which entry failed (inside a Bundle); the status stays the entry's own."""
    if not in_bundle:
        return error
    error.issue = dataclasses.replace(
        error.issue,
        diagnostics=f"Bundle.entry[{write.index}] ({write.resource_type}): "
        f"{error.issue.diagnostics}",
    )
    return error


def _made_at(conn: Connection, source: str, write: PlannedWrite) -> str | None:
    """When the source says it made this version: its meta.lastUpdated, unless the meta
    is this server's own, sent back (a versionId issued for this resource: a client
    saving what it read from here), which says nothing of the source's clock."""
    sent = last_updated_of(write.resource)
    meta = write.resource.get("meta")
    issued = meta.get("versionId") if isinstance(meta, dict) else None
    if sent is None or not isinstance(issued, str):
        return sent
    ours = version(conn, source, write.resource_type, write.resource_id, issued)
    return None if ours is not None else sent


def _no_newer(sent: str | None, deletion: StoredVersion) -> bool:
    """A version whose own lastUpdated is at or before the deletion was made before the
    source deleted it. Without one, it counts as the newest (a client re-creating)."""
    return sent is not None and deletion.last_updated is not None and sent <= deletion.last_updated


def _stays_deleted(write: PlannedWrite, deletion: StoredVersion) -> Issue:
    return Issue(
        "warning",
        "conflict",
        f"{write.resource_type}/{write.resource_id} was deleted at {deletion.last_updated}; "
        "this version's meta.lastUpdated is not after that: kept in its history, the "
        "resource stays deleted",
        f"{write.resource_type}.meta.lastUpdated",
    )


def _gone(deletion: StoredVersion) -> FhirError:
    """FHIR: a deleted resource (or its deletion, as a version) reads as 410 Gone."""
    return FhirError(
        410,
        "deleted",
        f"{deletion.resource_type}/{deletion.resource_id} was deleted "
        f"(version {deletion.version_id}, {deletion.received_at})",
        None,
        {"ETag": f'W/"{deletion.version_id}"'},
    )


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
