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
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError

from integration.clock import sleep_or_stop, utc_now
from integration.config import Settings
from integration.journey.update import pending_count, update_journey
from integration.sources import SourceConfig
from integration.store.errors import describe_store_error
from integration.store.leases import (
    LeaseLost,
    SyncUnit,
    claim_unit,
    ensure_units,
)
from integration.sync.leased import HeldUnits, default_owner, first_error
from integration.sync.runners import mode_of, sync_source
from integration.sync.summary import SyncSummary
from mappings.rulepack import RulePack

UnitCallback = Callable[[SyncUnit, SyncSummary | None, str | None], None]


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
                await sleep_or_stop(stop, self.settings.worker_poll_seconds)
                continue
            if unit is None:
                await asyncio.to_thread(self._catch_up_mapping)
                if once:
                    break
                await sleep_or_stop(stop, self.settings.worker_poll_seconds)
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
                    for unit in mode_of(source).units(source)
                ],
                utc_now(),
            )

    def _claim(self) -> SyncUnit | None:
        with self.engine.begin() as conn:
            return claim_unit(conn, self.owner, utc_now(), self.lease_seconds, self.sources)

    async def _run_unit(self, unit: SyncUnit) -> None:
        source = self.sources[unit.source]
        source = mode_of(source).narrow(source, unit.unit)
        held = HeldUnits(self.engine, self.settings, self.owner, [unit])
        summary: SyncSummary | None = None
        error: str | None = None
        try:
            summary = await held.run(sync_source(self.engine, self.pack, self.settings, source))
            error = first_error(summary)
        except LeaseLost as exc:
            self.stats.leases_lost += 1
            self.on_unit(unit, None, str(exc))
            return
        except DBAPIError as exc:
            self.stats.store_errors += 1
            error = (
                f"store error during the sync (the unit runs again): {describe_store_error(exc)}"
            )
        self.stats.units_run += 1
        self.stats.units_failed += error is not None
        try:
            await asyncio.to_thread(held.release, error)
        except DBAPIError as exc:
            # The lease runs out by itself and the unit is claimed again: nothing lost.
            self.stats.store_errors += 1
            self.on_note(
                f"could not give back {unit.source}/{unit.unit}: {describe_store_error(exc)}"
            )
        self.on_unit(unit, summary, error)
