"""Sync a `mode = "bulk"` source with FHIR Bulk Data `$export`.

Kick off (with `_since` = the previous export's transactionTime), poll the
status URL, stream each output file line by line into the same raw store,
mapping and journey as `journey import`, apply the deleted files (Bundles of
DELETE entries, for `_since` exports) as tombstones, read the error files into
the summary, then delete the export on the server.

Resumable: the status URL and the files already stored are saved as they
happen (`bulk_exports`). A sync killed while polling resumes polling the
same export; one killed mid-download re-reads only the files not finished
(the idempotent store absorbs the part of a file stored before the kill).
An export the server has forgotten (404/410) is started again, and the
summary says so.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import orjson

from connectors.bulk import BulkExport, ExportFile, Manifest
from connectors.errors import (
    ConnectorError,
    ExportExpired,
    ExportTimedOut,
    FhirHttpError,
    StreamFailed,
)
from connectors.files import FileReader, RawItem
from connectors.rest.http import FhirHttp
from connectors.rest.search import deleted_in
from connectors.streams import QueuedStream
from integration.clock import utc_now
from integration.ingest.pipeline import IngestSummary
from integration.ingest.policy import WayIn, ingest_pipeline
from integration.journey.update import update_journey
from integration.store.bulk_state import (
    ExportInProgress,
    finish_export,
    load_export,
    save_progress,
    start_export,
)
from integration.store.raw import IncomingResource
from integration.store.sync_state import load_checkpoint, record_run, save_checkpoint
from integration.sync.context import SyncRun
from integration.sync.deletions import tombstone, write_tombstones
from integration.sync.summary import SyncSummary, TypeSync

# The row in sync_state that holds a bulk source's checkpoint (last transactionTime).
EXPORT_STATE = "$export"


class BulkSync:
    def __init__(self, run: SyncRun) -> None:
        self.engine = run.engine
        self.pack = run.pack
        self.settings = run.settings
        self.source = run.source
        self.http = FhirHttp(run.client, run.source.policy)
        self.export = BulkExport(self.http)
        self.pipeline = ingest_pipeline(
            run.engine,
            run.pack,
            run.settings,
            run.source.name,
            WayIn.FILES,
            run.source.validate_resources,
        )
        self.on_progress = run.listener.on_step
        # The files this run stores (deleted ones too): what the mapping counts are
        # recounted over when they were mapped while stored.
        self._origins: list[str] = []

    async def run(self, full: bool = False) -> SyncSummary:
        started_at, started = utc_now(), time.perf_counter()
        summary = SyncSummary(self.source.name, stored=IngestSummary(self.source.name))
        self._origins = []
        before = await asyncio.to_thread(self.pipeline.begin_rounds)
        try:
            await self._run(full, summary)
        except (FhirHttpError, ConnectorError) as exc:
            summary.error = str(exc)
        finally:
            self.pipeline.close()
        summary.derive = await asyncio.to_thread(
            update_journey, self.engine, self.pack, self.settings.batch_size
        )
        if self.pipeline.rounds_run:  # what the files are now in the journey
            summary.derive = await asyncio.to_thread(
                self.pipeline.mapped_now, self._origins, before
            )
        summary.retries = self.http.retries
        summary.seconds = time.perf_counter() - started
        self._record(summary, started_at)
        return summary

    async def _run(self, full: bool, summary: SyncSummary) -> None:
        with self.engine.connect() as conn:
            job = None if full else load_export(conn, self.source.name)
            since = None if full else load_checkpoint(conn, self.source.name, EXPORT_STATE)
        if job is not None:
            summary.notes.append(
                f"resumed the export kicked off at {job.kicked_off_at} "
                f"({len(job.files_done)} file(s) already stored)"
            )
        else:
            job = await self._kick_off(since)
        try:
            manifest = await self._manifest(job)
        except ExportExpired:
            summary.notes.append(
                "the server no longer knew the export begun at "
                f"{job.kicked_off_at} (expired); started a new one"
            )
            job = await self._kick_off(job.since)
            manifest = await self._manifest(job)
        job.transaction_time = manifest.transaction_time
        with self.engine.begin() as conn:
            save_progress(conn, job)
        await self._store_outputs(job, manifest, summary)
        await self._apply_deleted(job, manifest, summary)
        await self._read_errors(manifest, summary)
        failed = [t for t in summary.types.values() if t.error]
        if failed:
            return  # keep the export: the next sync retries only the files that failed
        with self.engine.begin() as conn:
            save_checkpoint(conn, self.source.name, EXPORT_STATE, manifest.transaction_time)
            finish_export(conn, self.source.name)
        try:
            await self.export.delete(job.status_url)
        except FhirHttpError as exc:
            summary.notes.append(f"could not delete the export on the server: {exc}")

    async def _kick_off(self, since: str | None) -> ExportInProgress:
        params: list[tuple[str, str]] = [("_type", ",".join(self.source.resource_types))]
        if since:
            params.append(("_since", since))
        params += [("_typeFilter", query) for query in self.source.export.type_filter]
        url = self.source.export.kick_off_url(self.source.base_url)
        self.on_progress("export", "kick-off")
        status_url = await self.export.kick_off(url, params)
        job = ExportInProgress(self.source.name, status_url, utc_now(), since)
        with self.engine.begin() as conn:
            start_export(conn, job)
        return job

    async def _manifest(self, job: ExportInProgress) -> Manifest:
        return await self.export.wait_for_manifest(
            job.status_url,
            self.source.export.deadline_seconds,
            lambda progress: self.on_progress("export", progress or "in progress"),
        )

    async def _store_outputs(
        self, job: ExportInProgress, manifest: Manifest, summary: SyncSummary
    ) -> None:
        limit = asyncio.Semaphore(self.source.export.download_concurrency)
        for file in manifest.output:
            state = summary.types.setdefault(file.resource_type, TypeSync(file.resource_type))
            state.full = job.since is None
            state.checkpoint = manifest.transaction_time

        async def one(file: ExportFile) -> None:
            state = summary.types[file.resource_type]
            if file.url in job.files_done:
                state.warnings.append(f"{file.url}: stored by an earlier run; skipped")
                return
            async with limit:
                try:
                    read = await self._store_file(file, manifest, summary)
                except (FhirHttpError, StreamFailed) as exc:
                    state.error = f"{file.url}: {exc}"
                    return
            state.pages += 1
            state.fetched += read
            job.files_done.append(file.url)
            with self.engine.begin() as conn:
                save_progress(conn, job)
            self.on_progress(file.resource_type, f"{state.pages} file(s), {state.fetched} lines")

        await asyncio.gather(*(one(file) for file in manifest.output))

    async def _store_file(self, file: ExportFile, manifest: Manifest, summary: SyncSummary) -> int:
        """Download and store one file at once: bytes flow through a bounded queue."""
        stream = QueuedStream()
        assert summary.stored is not None
        download = asyncio.create_task(
            self.export.download(file, manifest.requires_access_token, stream)
        )
        stored = asyncio.create_task(
            asyncio.to_thread(self._store_lines, file.url, stream, summary.stored)
        )
        results = await asyncio.gather(download, stored, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result
        lines = results[1]
        assert isinstance(lines, int)
        return lines

    def _store_lines(self, origin: str, stream: QueuedStream, stored: IngestSummary) -> int:
        read = 0
        self._origins.append(origin)

        def counted() -> Iterator[RawItem]:
            nonlocal read
            reader = FileReader(self.settings.max_resource_bytes)
            for item in reader.read_ndjson(origin, stream, parse=False):
                read += 1
                yield item

        # On SQLite with validation, mapped while the worker processes validate the next
        # batches, as `journey import` does (one round at a time across the files),
        # unless resources were waiting to be mapped when the sync began (a run killed
        # before its mapping: see `IngestPipeline.begin_rounds`).
        self.pipeline.store(counted(), stored, self.pipeline.derives_while_storing)
        return read

    async def _apply_deleted(
        self, job: ExportInProgress, manifest: Manifest, summary: SyncSummary
    ) -> None:
        """Each deleted file's DELETE entries become tombstones, after the outputs (a
        resource deleted and created again is in the output with a later time). A
        deletion without `response.lastModified` is dated at the export's `_since`:
        the earliest it can have happened, so a version in this export's output (made
        after `_since`) still outranks it, and every version held before does not."""
        for file in manifest.deleted:
            if file.url in job.files_done:
                continue
            stream = QueuedStream()
            download = asyncio.create_task(
                self.export.download(file, manifest.requires_access_token, stream)
            )
            applied = asyncio.create_task(
                asyncio.to_thread(
                    self._store_deletions, file.url, stream, job.since or manifest.transaction_time
                )
            )
            results = await asyncio.gather(download, applied, return_exceptions=True)
            failure = next((r for r in results if isinstance(r, BaseException)), None)
            if isinstance(failure, (FhirHttpError, StreamFailed)):
                # As for an output file: the checkpoint stays, the next sync reads it again.
                for resource_type in self.source.resource_types:
                    state = summary.types.setdefault(resource_type, TypeSync(resource_type))
                    state.error = state.error or f"{file.url} (deleted): {failure}"
                return
            if failure is not None:
                raise failure
            counts = results[1]
            assert isinstance(counts, dict)
            for resource_type, count in counts.items():
                state = summary.types.setdefault(resource_type, TypeSync(resource_type))
                state.deleted += count
            job.files_done.append(file.url)
            with self.engine.begin() as conn:
                save_progress(conn, job)

    def _store_deletions(self, origin: str, stream: QueuedStream, dated: str) -> dict[str, int]:
        self._origins.append(origin)  # its tombstones are this run's rows too
        wanted = set(self.source.resource_types)
        counts: dict[str, int] = {}
        batch: list[IncomingResource] = []

        def flush() -> None:
            with self.engine.begin() as conn:
                for resource_type, count in write_tombstones(conn, batch, utc_now()).items():
                    counts[resource_type] = counts.get(resource_type, 0) + count
            batch.clear()

        reader = FileReader(self.settings.max_resource_bytes)
        # Unparsed: a line is one Bundle, read here whole (the import reader would
        # take its entries apart as resources).
        for item in reader.read_ndjson(origin, stream, parse=False):
            try:
                bundle = orjson.loads(item.raw or b"") if item.problem is None else None
            except orjson.JSONDecodeError:
                bundle = None
            if not isinstance(bundle, dict):
                continue  # an unreadable line names nothing to delete
            for resource_type, deletion in deleted_in(bundle):
                if resource_type in wanted:
                    batch.append(
                        tombstone(
                            self.source.name, resource_type, deletion, dated, origin, item.location
                        )
                    )
            if len(batch) >= self.settings.batch_size:
                flush()
        flush()
        return counts

    async def _read_errors(self, manifest: Manifest, summary: SyncSummary) -> None:
        """The server's error files (OperationOutcome NDJSON) go into the summary."""
        for file in manifest.error:
            stream = QueuedStream()
            try:
                await self.export.download(file, manifest.requires_access_token, stream)
            except FhirHttpError as exc:
                summary.notes.append(f"could not read the export's error file {file.url}: {exc}")
                continue
            for item in FileReader(self.settings.max_resource_bytes).read_ndjson(file.url, stream):
                summary.notes.append(f"the server reported: {_outcome_text(item)}")

    def _record(self, summary: SyncSummary, started: str) -> None:
        finished = utc_now()
        assert summary.stored is not None
        with self.engine.begin() as conn:
            record_run(
                conn,
                self.source.name,
                EXPORT_STATE,
                started,
                finished,
                summary.error,
                {"notes": summary.notes[:10], "retries": summary.retries},
            )
            for resource_type, state in summary.types.items():
                counts = summary.stored.by_type.get(resource_type)
                record_run(
                    conn,
                    self.source.name,
                    resource_type,
                    started,
                    finished,
                    state.error,
                    {
                        "files": state.pages,
                        "fetched": state.fetched,
                        "new": counts.new if counts else 0,
                        "changed": counts.changed if counts else 0,
                        "unchanged": counts.unchanged if counts else 0,
                        "quarantined": counts.quarantined if counts else 0,
                        "deleted": state.deleted,
                        "warnings": state.warnings[:5],
                    },
                )


def _outcome_text(item: RawItem) -> str:
    resource = item.resource
    if resource is None or resource.get("resourceType") != "OperationOutcome":
        return f"{item.location}: {item.problem or 'not an OperationOutcome'}"
    texts = []
    for issue in resource.get("issue", []):
        if isinstance(issue, dict):
            text = issue.get("diagnostics") or (issue.get("details") or {}).get("text")
            texts.append(f"{issue.get('severity', 'error')}: {text or issue.get('code')}")
    return "; ".join(texts) or "an OperationOutcome with no text"


__all__ = ["BulkSync", "ExportTimedOut"]
