"""Sync a configured FHIR source: pull what changed since the checkpoint, store it, map it.

Per source: read /metadata, then search each resource type (concurrently,
within the source's limits) with `_count` and, after the first full pull,
`_lastUpdated=gt<checkpoint - overlap>`. Each page is validated and stored
(or quarantined) in one transaction together with the new checkpoint (the
highest `meta.lastUpdated` on the page); pages that wait for the store at the
same time share that transaction, and a walk asks for its next page while its
page waits. So killing a sync loses nothing and the next run re-fetches at most
a transaction's pages plus the overlap; the idempotent store absorbs the repeats.
A failing resource type is reported and does not stop the others. The journey is
derived in rounds of `batch_size` stored resources while the pull goes on, and
once more at the end: on PostgreSQL in a process of its own
(journey/derive_process.py), so storing and deriving use a core each.

Where the server declares `history-type` for a type, an incremental sync reads
`[type]/_history?_since=` instead of searching: its versions are stored as search
results are, and its DELETE entries become tombstones at the server's time of the
deletion, so what the source deleted leaves the journey. A roster's sync reads it
too, keeping the members' versions and the deletions of what it holds, then reads
each member new on the roster whole.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection

from connectors.errors import FatalFhirError, FhirHttpError
from connectors.files import RawItem
from connectors.rest.capabilities import Capabilities, parse_capabilities
from connectors.rest.http import FhirHttp, Params
from connectors.rest.search import Deletion, SearchPage, history, search
from integration.clock import utc_now
from integration.errors import IntegrationError
from integration.ingest.pipeline import IngestSummary
from integration.ingest.policy import WayIn, ingest_pipeline
from integration.journey.derive_process import DeriveProcess, can_derive_apart
from integration.journey.purge import purge_subjects
from integration.journey.update import JourneyUpdate, update_journey
from integration.store.derivation import flag_for_derivation
from integration.store.populations import (
    RosterChange,
    replace_roster,
    restore_members,
    retire_members,
    roster_members_of,
)
from integration.store.purge import resources_of_subjects
from integration.store.pushed import current_versions
from integration.store.raw import IncomingResource, Rejected, live_ids
from integration.store.sync_state import (
    later_checkpoint,
    load_checkpoint,
    record_run,
    save_checkpoint,
)
from integration.sync.checkpoints import (
    first_updated,
    highest_last_updated,
    iso_ms,
    since,
)
from integration.sync.context import SyncRun
from integration.sync.deletions import tombstone, write_tombstones
from integration.sync.members import batches, belongs_to, roster_patient_ids
from integration.sync.summary import SyncSummary, TypeSync, type_counts

# The sync_state row of a type's last reconciliation (its checkpoint: when it ran).
RECONCILED = "$reconciled:"


@dataclass(slots=True)
class _Queued:
    """A page waiting for the store, and where to say it is stored (its checkpoint)."""

    page: SearchPage
    resource_type: str
    state: TypeSync
    stored: IngestSummary
    save: bool
    done: asyncio.Future[str | None]


class ListingIncomplete(IntegrationError):
    """A reconciliation listing that cannot be trusted to be whole."""


class RosterEmptied(IntegrationError):
    """A roster read empty where its leavers' data would be purged."""


def roster_note(members: int, change: RosterChange, policy: str) -> str:
    """The sync summary's line about the roster."""
    what = {
        "keep": "their data kept in the journey",
        "retire": "their data retired from the journey",
        "purge": "their data purged",
    }[policy]
    note = f"member roster: {members} members"
    if change.members_before:
        note += f", {len(change.joined)} joined, {len(change.left)} left ({what})"
    return note


class RestSync:
    """One run of one source by REST search (`mode = "rest"`)."""

    def __init__(self, run: SyncRun) -> None:
        self.engine = run.engine
        self.settings = run.settings
        self.source = run.source
        self.pack = run.pack
        self.http = FhirHttp(run.client, run.source.policy)
        self.pipeline = ingest_pipeline(
            run.engine,
            run.pack,
            run.settings,
            run.source.name,
            WayIn.PAGES,
            run.source.validate_resources,
        )
        self.on_page = run.listener.on_page
        self.members: set[str] | None = None
        # Members new on the roster since the last sync: their whole record is pulled.
        self.joined: set[str] = set()
        # One page stored at a time: the import counters and SQLite's writer are shared.
        self._store_lock = threading.Lock()
        # The journey is derived in rounds while pages still arrive, so it fills up
        # during a long sync and the final round, after the last page, is short.
        self._derived = JourneyUpdate()
        self._stored_since_derive = 0
        self._derive_apart = run.settings.derive_process and can_derive_apart(run.engine)
        self._deriver: DeriveProcess | None = None
        # Pages fetched and waiting for the store, and the task that stores them.
        self._queued: deque[_Queued] = deque()
        self._storer: asyncio.Task[None] | None = None

    async def run(self, full: bool = False) -> SyncSummary:
        started = time.perf_counter()
        summary = SyncSummary(self.source.name, stored=IngestSummary(self.source.name))
        try:
            capabilities = parse_capabilities(
                await self.http.get_json(f"{self.source.base_url}/metadata")
            )
        except FhirHttpError as exc:
            return self._fail(summary, f"cannot read the CapabilityStatement: {exc}", started)
        roster = self.source.members
        if roster is not None:
            try:
                self.members = set(
                    await roster_patient_ids(
                        self.http,
                        self.source.base_url,
                        roster.group,
                        roster.identifiers,
                        roster.batch_size,
                        roster.coverage_payor,
                    )
                )
            except FhirHttpError as exc:
                return self._fail(summary, f"cannot read the member roster: {exc}", started)
            try:
                change = await asyncio.to_thread(self._save_roster, sorted(self.members))
            except RosterEmptied as exc:
                return self._fail(summary, str(exc), started)
            self.joined = set(change.joined) if change.members_before else set()
            summary.notes.append(roster_note(len(self.members), change, roster.on_leaving))
        try:
            await asyncio.gather(
                *(
                    self._sync_type(resource_type, capabilities, full, summary)
                    for resource_type in self.source.resource_types
                )
            )
            # Off the event loop too: in the API, other requests keep being answered.
            await asyncio.to_thread(self._derive_serialised)
        finally:
            # A storer thread still at work after an error starts no derive process: its
            # rounds run here, or with the process closed not at all (what it stored stays
            # flagged for the next run).
            self._derive_apart = False
            if self._deriver is not None:
                self._deriver.close()
        summary.derive = self._derived
        summary.retries = self.http.retries
        summary.seconds = time.perf_counter() - started
        return summary

    def _save_roster(self, patient_ids: list[str]) -> RosterChange:
        """Keep the roster as just read (clients limited to it see who is on it) and
        apply the source's `on_leaving` to those who left: keep their data, retire it
        from the journey (until they return) or purge it."""
        policy = self.source.members.on_leaving if self.source.members else "keep"
        name = self.source.name
        with self.engine.begin() as conn:
            if policy == "purge" and not patient_ids and roster_members_of(conn, name):
                # Purging is for good: a roster read empty is likelier a server's fault.
                raise RosterEmptied(
                    "the member roster was read empty: purging every member's data was "
                    "not done (on_leaving = purge); nothing changed"
                )
            change = replace_roster(conn, name, patient_ids)
            returned = restore_members(conn, name, change.joined)
            if policy == "retire":
                retire_members(conn, name, change.left, utc_now())
            for patient_ids_changed in (returned, change.left if policy == "retire" else []):
                keys = resources_of_subjects(conn, name, patient_ids_changed)
                for resource_type in {t for _, t, _ in keys}:
                    flag_for_derivation(
                        conn, name, resource_type, [i for _, t, i in keys if t == resource_type]
                    )
        if policy == "purge" and change.left:
            purge_subjects(
                self.engine,
                self.pack,
                name,
                change.left,
                f"sync:{name}",
                "roster",
                "left the member roster",
            )
        return change

    def _fail(self, summary: SyncSummary, error: str, started: float) -> SyncSummary:
        summary.error = error
        self._record_all(summary, utc_now())
        summary.retries = self.http.retries
        summary.seconds = time.perf_counter() - started
        return summary

    async def _sync_type(
        self, resource_type: str, capabilities: Capabilities, full: bool, summary: SyncSummary
    ) -> None:
        state = TypeSync(resource_type)
        summary.types[resource_type] = state
        started = utc_now()
        assert summary.stored is not None
        try:
            declared = capabilities.supports_type(resource_type)
            if not declared:
                # CapabilityStatements are often incomplete: try, and say so.
                state.warnings.append(
                    f"the CapabilityStatement declares no search for {resource_type}; tried anyway"
                )
            params = {"_count": str(self.source.page_size)}
            with self.engine.connect() as conn:
                checkpoint = (
                    None if full else load_checkpoint(conn, self.source.name, resource_type)
                )
            state.checkpoint = checkpoint
            # Deletions show in the history; without it, only a reconciliation finds them.
            deletions_unseen = not capabilities.supports_history(resource_type)
            if checkpoint is not None and not deletions_unseen:
                if await self._walk_history(resource_type, checkpoint, state, summary.stored):
                    if self.members is not None and self.joined:
                        await self._walk_members(
                            resource_type, capabilities, params, state, summary.stored, True
                        )
                    return
                deletions_unseen = True  # declared, but refused
            can_filter = declared and capabilities.supports_param(resource_type, "_lastUpdated")
            if checkpoint is not None:
                if can_filter:
                    params["_lastUpdated"] = f"gt{since(checkpoint, self.source.overlap_seconds)}"
                    state.full = False
                else:
                    state.warnings.append(
                        f"the server does not declare _lastUpdated for {resource_type}: full pull"
                    )
            if self.members is not None:
                await self._walk_members(resource_type, capabilities, params, state, summary.stored)
            else:
                await self._walk_everyone(resource_type, params, can_filter, state, summary.stored)
            if self.source.reconcile_every_days is not None and deletions_unseen:
                await self._reconcile_if_due(resource_type, state)
        except FhirHttpError as exc:
            state.error = str(exc)
        finally:
            with self.engine.begin() as conn:
                record_run(
                    conn,
                    self.source.name,
                    resource_type,
                    started,
                    utc_now(),
                    state.error,
                    type_counts(state, summary.stored),
                )

    async def _walk_everyone(
        self,
        resource_type: str,
        params: dict[str, str],
        can_filter: bool,
        state: TypeSync,
        stored: IngestSummary,
    ) -> None:
        """Search the whole type, in concurrent time windows where the server allows."""
        plan = await self._plan_slices(resource_type, params) if can_filter else None
        if plan is not None:
            walk_started = await self._walk_slices(resource_type, params, plan, state, stored)
        else:
            walk_started = await self._walk(resource_type, params, state, stored)
        if state.pages > 1 and walk_started and can_filter:
            # Offset paging shifts when data changes mid-walk: one more pass for what
            # changed since the walk began catches anything that moved past us.
            # The start time is the server's own, so only same-second writes need a margin.
            catch_up = {**params, "_lastUpdated": f"gt{since(walk_started, 1)}"}
            await self._walk(resource_type, catch_up, state, stored)
            state.catch_up_pass = True

    async def _walk_history(
        self, resource_type: str, checkpoint: str, state: TypeSync, stored: IngestSummary
    ) -> bool:
        """Read what changed, deletions included, from the type's history; False when the
        server refuses its own declared history (then the search goes on as before)."""
        params = {
            "_since": since(checkpoint, self.source.overlap_seconds),
            "_count": str(self.source.page_size),
        }
        before = state.checkpoint
        try:
            # Newest first (FHIR orders history so): the checkpoint may move only once
            # every page is stored, or a sync killed after page 1 would skip the rest.
            await self._walk(
                resource_type,
                params,
                state,
                stored,
                members_only=self.members is not None,
                defer_checkpoint=True,
                pages=history,
            )
        except FatalFhirError as exc:
            state.warnings.append(
                f"the server declares history for {resource_type} but refused it ({exc}): "
                "searched instead, deletions unseen"
            )
            state.checkpoint = before  # the search starts from the saved checkpoint
            return False
        self._save_checkpoint_if_moved(resource_type, before, state)
        state.full = False
        state.history = True
        return True

    async def _reconcile_if_due(self, resource_type: str, state: TypeSync) -> None:
        """For a type without history: list the ids the server holds (`_elements=id`,
        paged) and store a tombstone for each held id it no longer lists. Only a whole,
        successful listing counts: a failed request, a page cut short, an unreadable
        entry or fewer ids than the server's `total` deletes nothing."""
        every = self.source.reconcile_every_days
        assert every is not None
        unit = f"{RECONCILED}{resource_type}"
        with self.engine.connect() as conn:
            last = load_checkpoint(conn, self.source.name, unit)
            held = live_ids(conn, self.source.name, resource_type)
        now = utc_now()
        due = datetime.fromisoformat(now) - timedelta(days=every)
        if last is not None and datetime.fromisoformat(last) > due:
            return
        started = now
        listed: set[str] = set()
        total: int | None = None
        server_time: str | None = None
        params = {"_elements": "id", "_count": str(self.source.page_size)}
        try:
            async for page in search(self.http, self.source.base_url, resource_type, params):
                server_time = server_time or page.server_time
                total = page.total if page.number == 1 else total
                if page.broken or page.warnings:
                    why = "; ".join([p for _, p in page.broken] + page.warnings)
                    raise ListingIncomplete(f"page {page.number}: {why}")
                ids = [r.get("id") for _, r in page.resources]
                if not all(isinstance(i, str) and i for i in ids):
                    raise ListingIncomplete(f"page {page.number}: an entry without an id")
                listed.update(str(i) for i in ids)
        except (FhirHttpError, ListingIncomplete) as exc:
            state.warnings.append(
                f"reconciliation of {resource_type} not done, nothing deleted: {exc}"
            )
            return
        if total is not None and len(listed) < total:
            state.warnings.append(
                f"reconciliation of {resource_type} not done, nothing deleted: the server "
                f"counts {total} but listed {len(listed)} ids"
            )
            return
        if not listed and held:
            state.warnings.append(
                f"reconciliation of {resource_type} not done, nothing deleted: the server "
                f"listed no ids while {len(held)} are held (taken for a listing it cannot do)"
            )
            return
        missing = sorted(held - listed)
        tombstones = [
            tombstone(
                self.source.name,
                resource_type,
                Deletion(resource_id, None, None),
                server_time or started,
                "reconciliation",
                f"not listed by {self.source.base_url}/{resource_type}?_elements=id",
            )
            for resource_id in missing
        ]

        def store() -> None:
            with self._store_lock, self.engine.begin() as conn:
                written = write_tombstones(conn, tombstones, utc_now())
                state.deleted += written.get(resource_type, 0)
                save_checkpoint(conn, self.source.name, unit, started)
                record_run(
                    conn,
                    self.source.name,
                    unit,
                    started,
                    utc_now(),
                    None,
                    {"listed": len(listed), "held": len(held), "deleted": len(missing)},
                )

        await asyncio.to_thread(store)
        state.reconciled = True

    async def _walk(
        self,
        resource_type: str,
        params: Params,
        state: TypeSync,
        stored: IngestSummary,
        members_only: bool = False,
        defer_checkpoint: bool = False,
        pages: Callable[[FhirHttp, str, str, Params], AsyncIterator[SearchPage]] = search,
    ) -> str | None:
        """Store every page of one search; returns the server's time at its first page.

        With `members_only`, resources of non-members are dropped (counted). With
        either flag the checkpoint is left for the caller to save once every batch
        or slice is stored."""
        started: str | None = None
        # The page before this one, still being stored: the next request goes out
        # meanwhile, and each page is stored only after the one before it (the
        # checkpoint of a walk moves in page order).
        storing: asyncio.Task[None] | None = None
        save = not (members_only or defer_checkpoint)
        try:
            async for page in pages(self.http, self.source.base_url, resource_type, params):
                started = started or page.server_time
                state.pages += 1
                state.fetched += len(page.resources) + len(page.deleted)
                for warning in page.warnings:
                    if warning not in state.warnings:
                        state.warnings.append(warning)
                if members_only and self.members is not None:
                    members = self.members
                    kept = [
                        (i, r) for i, r in page.resources if belongs_to(r, resource_type, members)
                    ]
                    state.skipped_not_members += len(page.resources) - len(kept)
                    page.resources = kept
                    if page.deleted:
                        # A deletion names no patient: applied where the resource is held,
                        # so a non-member's deletion leaves no trace here.
                        page.deleted = await asyncio.to_thread(
                            self._held_deletions, resource_type, page.deleted
                        )
                if storing is not None:
                    await storing
                storing = asyncio.create_task(
                    self._store_in_turn(page, resource_type, state, stored, save)
                )
            if storing is not None:
                await storing
        finally:
            if storing is not None:
                # A request failed while a page was being stored: that page still counts,
                # and the request's error is the one the walk reports.
                await asyncio.wait([storing])
                if not storing.cancelled():
                    storing.exception()
        return started

    async def _store_in_turn(
        self,
        page: SearchPage,
        resource_type: str,
        state: TypeSync,
        stored: IngestSummary,
        save: bool,
    ) -> None:
        """Queue a page for the store and wait until it is stored. Pages waiting together
        are validated and written in one transaction by one thread hop (the store has one
        writer anyway): many small pages cost less per page than one by one."""
        done: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
        self._queued.append(_Queued(page, resource_type, state, stored, save, done))
        if self._storer is None or self._storer.done():
            self._storer = asyncio.create_task(self._store_queued())
        stored_up_to = await done
        state.checkpoint = later_checkpoint(state.checkpoint, stored_up_to)
        self.on_page(self.source.name, resource_type, page)

    async def _store_queued(self) -> None:
        """The one task that hands queued pages to the store, a group at a time."""
        while self._queued:
            group = self._next_group()
            try:
                checkpoints = await asyncio.to_thread(self._store_group_serialised, group)
            except BaseException as exc:
                # One transaction for the group: none of its pages is stored, and each
                # page's walk hears why (as it did when pages were stored one by one).
                for item in group:
                    if item.done.done():
                        continue
                    if isinstance(exc, asyncio.CancelledError):
                        item.done.cancel()
                    else:
                        item.done.set_exception(exc)
                if not isinstance(exc, Exception):
                    raise
                continue
            for item, checkpoint in zip(group, checkpoints, strict=True):
                if not item.done.done():
                    item.done.set_result(checkpoint)

    def _next_group(self) -> list[_Queued]:
        """Queued pages up to `batch_size` resources (at least one page)."""
        group: list[_Queued] = []
        size = 0
        while self._queued and (not group or size < self.settings.batch_size):
            item = self._queued.popleft()
            group.append(item)
            size += len(item.page.resources) + len(item.page.broken) + len(item.page.deleted)
        return group

    async def _plan_slices(
        self, resource_type: str, params: dict[str, str]
    ) -> tuple[list[tuple[str, str]], str | None] | None:
        """Time windows to walk concurrently, when the result is large and the server
        sorts by _lastUpdated; None to walk the next links one by one."""
        size = self.source.page_size
        if self.source.concurrency < 2:
            return None
        url = f"{self.source.base_url}/{resource_type}"
        try:
            oldest = await self.http.get_json(
                url, {**params, "_sort": "_lastUpdated", "_count": "1"}
            )
            newest = await self.http.get_json(
                url, {**params, "_sort": "-_lastUpdated", "_count": "1"}
            )
        except FatalFhirError:
            return None  # no _sort here: the plain walk it is
        total = oldest.get("total")
        first, last = first_updated(oldest, resource_type), first_updated(newest, resource_type)
        if not isinstance(total, int) or total <= 2 * size or first is None or last is None:
            return None
        if first >= last:
            return None  # _sort ignored, or everything in one instant
        slices = min(self.source.concurrency, math.ceil(total / size))
        high = last + timedelta(milliseconds=1)
        edges = [first + (high - first) * k / slices for k in range(slices + 1)]
        windows = [(iso_ms(edges[k]), iso_ms(edges[k + 1])) for k in range(slices)]
        meta = oldest.get("meta")
        server_time = meta.get("lastUpdated") if isinstance(meta, dict) else None
        return windows, server_time if isinstance(server_time, str) else None

    async def _walk_slices(
        self,
        resource_type: str,
        params: dict[str, str],
        plan: tuple[list[tuple[str, str]], str | None],
        state: TypeSync,
        stored: IngestSummary,
    ) -> str | None:
        """Walk each time window's next links concurrently; save the checkpoint only
        when every window is stored (one window's later data must not pass another's)."""
        windows, server_time = plan
        base = [(k, v) for k, v in params.items() if k != "_lastUpdated"]
        before = state.checkpoint
        results = await asyncio.gather(
            *(
                self._walk(
                    resource_type,
                    [*base, ("_lastUpdated", f"ge{low}"), ("_lastUpdated", f"lt{high}")],
                    state,
                    stored,
                    defer_checkpoint=True,
                )
                for low, high in windows
            ),
            return_exceptions=True,
        )
        state.slices = len(windows)
        for result in results:
            if isinstance(result, BaseException):
                raise result
        self._save_checkpoint_if_moved(resource_type, before, state)
        return server_time

    def _held_deletions(
        self, resource_type: str, deleted: list[tuple[int, Deletion]]
    ) -> list[tuple[int, Deletion]]:
        keys = [(resource_type, d.resource_id) for _, d in deleted]
        with self.engine.connect() as conn:
            held = current_versions(conn, self.source.name, keys)
        return [(i, d) for i, d in deleted if (resource_type, d.resource_id) in held]

    async def _walk_members(
        self,
        resource_type: str,
        capabilities: Capabilities,
        params: dict[str, str],
        state: TypeSync,
        stored: IngestSummary,
        only_joined: bool = False,
    ) -> None:
        """Pull a type for the roster's patients, a batch of ids per search; with
        `only_joined`, only the members new on the roster (the history brought the rest)."""
        members, roster = self.members, self.source.members
        if members is None or roster is None:
            return
        before = state.checkpoint
        ids = sorted(self.joined & members) if only_joined else sorted(members)
        if resource_type == "Patient":
            by = "_id"
        elif capabilities.supports_param(resource_type, "patient"):
            by = "patient"
        else:
            by = None
            state.warnings.append(
                f"the server declares no patient search for {resource_type}: searched the "
                "whole type and kept members' resources only"
            )
        if by is None:
            await self._walk(resource_type, params, state, stored, members_only=True)
        else:
            # A member new on the roster is read whole: what they had before they joined
            # is older than the checkpoint.
            whole = {k: v for k, v in params.items() if k != "_lastUpdated"}
            joined = sorted(self.joined & members) if whole != params else []
            for group, group_params in ((sorted(set(ids) - set(joined)), params), (joined, whole)):
                for chunk in batches(group, roster.batch_size):
                    # `patient=Patient/x` is understood by every server; a bare id is not.
                    values = chunk if by == "_id" else [f"Patient/{pid}" for pid in chunk]
                    await self._walk(
                        resource_type,
                        {**group_params, by: ",".join(values)},
                        state,
                        stored,
                        True,
                    )
        # Only now: a checkpoint saved after batch 1 could pass data of batch 3 unread.
        self._save_checkpoint_if_moved(resource_type, before, state)

    def _save_checkpoint_if_moved(
        self, resource_type: str, before: str | None, state: TypeSync
    ) -> None:
        """After every batch or window of a type is stored: only now may it advance."""
        if state.checkpoint is not None and state.checkpoint != before:
            with self.engine.begin() as conn:
                save_checkpoint(conn, self.source.name, resource_type, state.checkpoint)

    def _store_group_serialised(self, group: list[_Queued]) -> list[str | None]:
        """Store queued pages in one transaction; each page's checkpoint once stored."""
        with self._store_lock:
            stored_up_to = self._store_pages(group)
            self._stored_since_derive += sum(
                len(q.page.resources) + len(q.page.broken) + len(q.page.deleted) for q in group
            )
            if self._stored_since_derive >= self.settings.batch_size:
                self._derive_round()
            return stored_up_to

    def _derive_round(self) -> None:
        """Map what is stored so far (the caller holds the store lock): in the derive
        process, which starts at the first round, without waiting for it. Records whose
        Patient has not arrived yet join the journey when it does, as on import."""
        self._stored_since_derive = 0
        if self._deriver is None and self._derive_apart:
            self._deriver = DeriveProcess(self.engine, self.pack, self.settings)
        if self._deriver is not None:
            self._deriver.request()
        else:
            self._derive_here()

    def _derive_serialised(self) -> None:
        """The last round, after the last page (a short sync's only one, in-process)."""
        with self._store_lock:
            if self._deriver is not None:
                self._derived.add(self._deriver.finish())
            else:
                self._derive_here()

    def _derive_here(self) -> None:
        self._derived.add(update_journey(self.engine, self.pack, self.settings.batch_size))

    def _store_pages(self, group: list[_Queued]) -> list[str | None]:
        """Take in and write the pages of `group` in one transaction, with their
        tombstones and, for walks that save as they go, their types' checkpoints."""
        batch: list[tuple[str, IncomingResource | Rejected]] = []
        tombstones: list[IncomingResource] = []
        checkpoints: list[str | None] = []
        saves: dict[str, str] = {}
        deleting: dict[str, TypeSync] = {}
        stored = group[0].stored
        for queued in group:
            page, resource_type, state = queued.page, queued.resource_type, queued.state
            assert queued.stored is stored  # one summary per sync
            where = f"page {page.number}"
            batch += [
                self.pipeline.intake(
                    RawItem(page.url, f"{where}, entry {index}", resource=resource), stored
                )
                for index, resource in page.resources
            ]
            batch += [
                self.pipeline.intake(
                    RawItem(page.url, f"{where}, entry {index}", problem=problem), stored
                )
                for index, problem in page.broken
            ]
            new_checkpoint = highest_last_updated(page, state.checkpoint)
            checkpoints.append(new_checkpoint)
            if queued.save and new_checkpoint is not None and new_checkpoint != state.checkpoint:
                saves[resource_type] = (
                    later_checkpoint(saves.get(resource_type), new_checkpoint) or new_checkpoint
                )
            if page.deleted:
                deleting[resource_type] = state
                tombstones += [
                    tombstone(
                        self.source.name,
                        resource_type,
                        deletion,
                        page.server_time,
                        page.url,
                        f"{where}, entry {index}",
                    )
                    for index, deletion in page.deleted
                ]

        def save_with_pages(conn: Connection) -> None:
            # In the pages' transaction: a deletion is stored with the versions beside it,
            # a checkpoint with the resources it covers.
            written = write_tombstones(conn, tombstones, utc_now())
            for resource_type, state in deleting.items():
                state.deleted += written.get(resource_type, 0)
            for resource_type, checkpoint in saves.items():
                save_checkpoint(conn, self.source.name, resource_type, checkpoint)

        self.pipeline.write(batch, stored, also=save_with_pages)
        return checkpoints

    def _record_all(self, summary: SyncSummary, now: str) -> None:
        with self.engine.begin() as conn:
            for resource_type in self.source.resource_types:
                record_run(conn, self.source.name, resource_type, now, now, summary.error, {})
