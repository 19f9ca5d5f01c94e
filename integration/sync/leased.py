"""Every sync holds its units' leases while it runs, whoever starts it.

`journey worker` claims one due unit at a time; `journey sync` and
`POST /sources/{name}/sync` claim all of a source's units at once, due or
not, and are refused (`SyncAlreadyRunning`: the CLI says so, the API answers
409) while another run holds one. The holder renews the leases at a third of
their length while it works and gives them back when done, due again after
`sync_interval_seconds` (sooner, with backoff, after a failure). Claims,
renewals and releases are short transactions of their own; nothing holds a
database lock across a network call.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import uuid
from collections.abc import Awaitable, Callable

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError

from integration.clock import utc_now
from integration.config import Settings
from integration.sources import SourceConfig
from integration.store.leases import (
    LeaseLost,
    SyncAlreadyRunning,
    SyncUnit,
    claim_units,
    later,
    release_unit,
    renew_lease,
)
from integration.sync.runners import mode_of
from integration.sync.summary import SyncSummary


def default_owner(role: str = "worker") -> str:
    """Who holds a lease, for people reading `journey sources`: role, host, pid, a nonce."""
    return f"{role}@{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def _died_here(owner: str) -> bool:
    """Was `owner` (as `default_owner` writes it) a process on this machine that has
    ended? False when it is elsewhere or cannot be told."""
    _, _, where = owner.partition("@")
    host, _, rest = where.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # running, as another user
    return False


def first_error(summary: SyncSummary) -> str | None:
    if summary.error:
        return summary.error
    return next((t.error for t in summary.types.values() if t.error), None)


class HeldUnits:
    """Leases one run holds: renewed while the work runs, released after."""

    def __init__(
        self, engine: Engine, settings: Settings, owner: str, units: list[SyncUnit]
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.owner = owner
        self.units = units
        self.lease_seconds = settings.worker_lease_seconds

    @classmethod
    def claim_source(
        cls, engine: Engine, settings: Settings, source: SourceConfig, owner: str
    ) -> HeldUnits:
        """All of `source`'s units, or `SyncAlreadyRunning`. Units whose holder was a
        process on this machine that is no longer running (a `journey sync` killed
        a moment ago) are taken over rather than waited for."""

        def claim(gone: str | None = None) -> list[SyncUnit]:
            with engine.begin() as conn:
                return claim_units(
                    conn,
                    owner,
                    utc_now(),
                    settings.worker_lease_seconds,
                    source.name,
                    mode_of(source).units(source),
                    gone,
                )

        try:
            units = claim()
        except SyncAlreadyRunning as busy:
            if busy.owner is None or not _died_here(busy.owner):
                raise
            units = claim(gone=busy.owner)
        return cls(engine, settings, owner, units)

    async def run(self, work: Awaitable[SyncSummary]) -> SyncSummary:
        """Run `work` while renewing the leases; if one is lost (it ran out and another
        run took the unit), the work is cancelled and `LeaseLost` raised."""
        task = asyncio.ensure_future(work)
        lost: list[LeaseLost] = []
        heartbeat = asyncio.create_task(self._heartbeat(task, lost))
        try:
            return await task
        except asyncio.CancelledError:
            if lost:
                raise lost[0] from None
            raise
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat

    async def run_then_release(self, work: Awaitable[SyncSummary]) -> SyncSummary:
        """`run`, then give the units back with its outcome, whatever happens."""
        error: str | None = "the sync stopped before it finished"
        try:
            summary = await self.run(work)
            error = first_error(summary)
            return summary
        finally:
            with contextlib.suppress(DBAPIError):
                # The leases run out by themselves if the store is away: nothing lost.
                await asyncio.to_thread(self.release, error)

    async def _heartbeat(self, work: asyncio.Future[SyncSummary], lost: list[LeaseLost]) -> None:
        while True:
            await asyncio.sleep(self.lease_seconds / 3)
            try:
                await asyncio.to_thread(self._renew)
            except LeaseLost as exc:
                lost.append(exc)
                work.cancel()
                return
            except DBAPIError:
                continue  # the store is away; the work meets it too. Try again.

    def _renew(self) -> None:
        with self.engine.begin() as conn:
            for unit in self.units:
                renew_lease(conn, unit, self.owner, utc_now(), self.lease_seconds)

    def release(self, error: str | None) -> None:
        """Give the units back, due again after the sync interval; after a failure
        sooner: 30 s, 1 min, 2 min ... (worker_retry_seconds), up to the interval."""
        now = utc_now()
        interval = float(self.settings.sync_interval_seconds)
        with self.engine.begin() as conn:
            for unit in self.units:
                retry = self.settings.worker_retry_seconds * 2**unit.attempts
                wait = interval if error is None else min(interval, retry)
                release_unit(conn, unit, self.owner, now, later(now, wait), error)


async def sync_leased(
    engine: Engine,
    settings: Settings,
    source: SourceConfig,
    owner: str,
    start: Callable[[], Awaitable[SyncSummary]],
) -> SyncSummary:
    """Claim all of `source`'s units (or raise `SyncAlreadyRunning`), run `start()`
    under their leases, and give them back with its outcome."""
    held = await asyncio.to_thread(HeldUnits.claim_source, engine, settings, source, owner)
    return await held.run_then_release(start())
