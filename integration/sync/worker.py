"""`journey worker`: run sync units from the shared store, as many workers as wanted.

Each worker registers the units its configuration names (one per source and
resource type; one "$export" per Bulk Data source), then loops: claim a due
unit (`integration.store.leases`), sync it while a heartbeat renews the
lease, give it back due again after `sync_interval_seconds` (sooner, with
backoff, after a failure). Claims and renewals are short transactions of
their own; nothing holds a database lock across a network call.

Nothing is lost or duplicated when a worker dies mid-unit: a sync saves its
checkpoint in the same transaction as the page it covers, raw writes are
idempotent, and a Bulk Data export in progress is remembered, so the worker
that claims the expired unit resumes where the dead one stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError

from integration.clock import utc_now
from integration.config import Settings
from integration.journey.update import pending_count, update_journey
from integration.sources import SourceConfig
from integration.store.errors import describe_store_error
from integration.store.leases import (
    LeaseLost,
    SyncUnit,
    claim_unit,
    ensure_units,
    later,
    release_unit,
    renew_lease,
)
from integration.sync.rest import SyncSummary, sync_source
from mappings.rulepack import RulePack

EXPORT_UNIT = "$export"

UnitCallback = Callable[[SyncUnit, SyncSummary | None, str | None], None]


def default_owner() -> str:
    """Who holds a lease, for people reading `journey sources`: host, pid, and a nonce."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def units_of(source: SourceConfig) -> list[str]:
    return [EXPORT_UNIT] if source.mode == "bulk" else list(source.resource_types)


@dataclass(slots=True)
class WorkerStats:
    units_run: int = 0
    units_failed: int = 0
    leases_lost: int = 0
    store_errors: int = 0


class SyncWorker:
    def __init__(
        self,
        engine: Engine,
        pack: RulePack,
        settings: Settings,
        sources: list[SourceConfig],
        owner: str | None = None,
        on_unit: UnitCallback | None = None,
        on_note: Callable[[str], None] | None = None,
    ) -> None:
        self.engine = engine
        self.pack = pack
        self.settings = settings
        self.sources = {source.name: source for source in sources}
        self.owner = owner or default_owner()
        self.lease_seconds = settings.worker_lease_seconds
        self.on_unit = on_unit or (lambda _u, _s, _e: None)
        self.on_note = on_note or (lambda _m: None)
        self.stats = WorkerStats()

    async def run(self, stop: asyncio.Event | None = None, once: bool = False) -> WorkerStats:
        """Work until `stop` is set; with `once`, until no unit is due."""
        stop = stop or asyncio.Event()
        await asyncio.to_thread(self._register_units)
        while not stop.is_set():
            try:
                unit = await asyncio.to_thread(self._claim)
            except DBAPIError as exc:
                # The database restarting, a network blip: say so, wait, try again.
                self.stats.store_errors += 1
                self.on_note(f"store unavailable, trying again: {describe_store_error(exc)}")
                await _sleep_or_stop(stop, self.settings.worker_poll_seconds)
                continue
            if unit is None:
                await asyncio.to_thread(self._catch_up_mapping)
                if once:
                    break
                await _sleep_or_stop(stop, self.settings.worker_poll_seconds)
                continue
            await self._run_unit(unit)
        return self.stats

    def _catch_up_mapping(self) -> None:
        """Nothing due: map what waits (a push whose mapping lagged, an interrupted run)."""
        try:
            if pending_count(self.engine):
                update_journey(self.engine, self.pack, self.settings.batch_size)
        except DBAPIError as exc:
            self.stats.store_errors += 1
            self.on_note(f"mapping could not catch up, trying again: {describe_store_error(exc)}")

    def _register_units(self) -> None:
        with self.engine.begin() as conn:
            ensure_units(
                conn,
                [
                    (name, unit)
                    for name, source in self.sources.items()
                    for unit in units_of(source)
                ],
                utc_now(),
            )

    def _claim(self) -> SyncUnit | None:
        with self.engine.begin() as conn:
            return claim_unit(conn, self.owner, utc_now(), self.lease_seconds, self.sources)

    async def _run_unit(self, unit: SyncUnit) -> None:
        source = self.sources[unit.source]
        if unit.unit != EXPORT_UNIT:
            source = source.model_copy(update={"resource_types": (unit.unit,)})
        sync = asyncio.create_task(sync_source(self.engine, self.pack, self.settings, source))
        lost: list[LeaseLost] = []
        heartbeat = asyncio.create_task(self._heartbeat(unit, sync, lost))
        summary: SyncSummary | None = None
        error: str | None = None
        try:
            summary = await sync
            error = _first_error(summary)
        except asyncio.CancelledError:
            if not lost:
                raise
        except DBAPIError as exc:
            self.stats.store_errors += 1
            error = (
                f"store error during the sync (the unit runs again): {describe_store_error(exc)}"
            )
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat
        if lost:
            self.stats.leases_lost += 1
            self.on_unit(unit, None, str(lost[0]))
            return
        self.stats.units_run += 1
        self.stats.units_failed += error is not None
        try:
            await asyncio.to_thread(self._release, unit, error)
        except DBAPIError as exc:
            # The lease runs out by itself and the unit is claimed again: nothing lost.
            self.stats.store_errors += 1
            self.on_note(
                f"could not give back {unit.source}/{unit.unit}: {describe_store_error(exc)}"
            )
        self.on_unit(unit, summary, error)

    async def _heartbeat(
        self, unit: SyncUnit, sync: asyncio.Task[SyncSummary], lost: list[LeaseLost]
    ) -> None:
        """Renew the lease at a third of its length; if it was lost, stop the sync."""
        while True:
            await asyncio.sleep(self.lease_seconds / 3)
            try:
                await asyncio.to_thread(self._renew, unit)
            except LeaseLost as exc:
                lost.append(exc)
                sync.cancel()
                return
            except DBAPIError:
                continue  # the store is away; the sync meets it too. Try again.

    def _renew(self, unit: SyncUnit) -> None:
        with self.engine.begin() as conn:
            renew_lease(conn, unit, self.owner, utc_now(), self.lease_seconds)

    def _release(self, unit: SyncUnit, error: str | None) -> None:
        now = utc_now()
        interval = float(self.settings.sync_interval_seconds)
        # After a failure: 30 s, 1 min, 2 min ... (worker_retry_seconds), up to the interval.
        retry = self.settings.worker_retry_seconds * 2**unit.attempts
        wait = interval if error is None else min(interval, retry)
        with self.engine.begin() as conn:
            release_unit(conn, unit, self.owner, now, later(now, wait), error)


def _first_error(summary: SyncSummary) -> str | None:
    if summary.error:
        return summary.error
    return next((t.error for t in summary.types.values() if t.error), None)


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)
