"""What `journey serve` keeps up in the background, off every request's path: the
episodes of people whose records changed (pushes mark them and return) and the
feed's retention."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine

from integration.journey.episodes import refresh_episodes
from integration.store import audit as audit_store
from integration.store import episodes as episodes_store
from integration.store import feed as feed_store
from integration.store.errors import describe_error
from integration.store.locks import DERIVE, hold
from mappings.dates import ISO_FORMAT
from mappings.rulepack import RulePack

log = logging.getLogger(__name__)
PRUNE_EVERY_SECONDS = 3600.0
THREAD_NAME = "upkeep"


class Upkeep:
    """Every `interval` seconds: recompute stale people's episodes in small batches (a
    short hold of the derive lock each); every hour: drop feed events older than
    `retention_days` and audit rows older than `audit_retention_days`.

    While `busy()` says requests are being answered, the episodes take at most `share`
    of the time: after a batch of t seconds the upkeep rests t * (1 - share) / share.
    Its queries and Python compete with the requests' for the same cores (and, on
    PostgreSQL, the same server), and a store just filled by an import can keep it
    busy for minutes; when nobody is waiting it runs flat out."""

    def __init__(
        self,
        engine: Engine,
        pack_of: Callable[[Engine], RulePack],
        retention_days: int,
        interval: float = 2.0,
        batch_size: int = 50,
        audit_retention_days: int | None = None,
        busy: Callable[[], bool] = lambda: False,
        share: float = 1.0,
    ) -> None:
        if not 0 < share <= 1:
            raise ValueError(f"upkeep share must be in (0, 1], not {share}")
        self._engine = engine
        self._pack_of = pack_of
        self._retention = timedelta(days=retention_days)
        self._audit_retention = (
            None if audit_retention_days is None else timedelta(days=audit_retention_days)
        )
        self._interval = interval
        self._batch_size = batch_size
        self._busy = busy
        self._rest_per_second = (1 - share) / share
        self._pruned_at = float("-inf")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=THREAD_NAME, daemon=True)
            self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join(timeout=30)
            self._thread = None

    def refresh_episodes(self) -> int:
        """One pass: the people marked stale now; 0 when none (no lock taken)."""
        with self._engine.connect() as conn:
            if not episodes_store.stale_people(conn, 1):
                return 0
        return refresh_episodes(
            self._engine, self._pack_of(self._engine), self._batch_size, pace=self._pace
        )

    def rest_after(self, batch_seconds: float) -> float:
        """Seconds to rest after a batch that took `batch_seconds`."""
        return batch_seconds * self._rest_per_second if self._busy() else 0.0

    def _pace(self, batch_seconds: float) -> bool:
        """After a batch: rest as `rest_after` says; False once stopping."""
        rest = self.rest_after(batch_seconds)
        return not (self._stop.wait(rest) if rest else self._stop.is_set())

    def prune_feed(self) -> int:
        now = datetime.now(UTC)
        with self._engine.begin() as conn:
            hold(conn, DERIVE, now.strftime(ISO_FORMAT))
            return feed_store.prune(conn, (now - self._retention).strftime(ISO_FORMAT))

    def prune_audit(self) -> int:
        if self._audit_retention is None:
            return 0
        before = (datetime.now(UTC) - self._audit_retention).strftime(ISO_FORMAT)
        with self._engine.begin() as conn:
            return audit_store.prune(conn, before)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.refresh_episodes()
                if time.monotonic() - self._pruned_at >= PRUNE_EVERY_SECONDS:
                    self._pruned_at = time.monotonic()
                    self.prune_feed()
                    self.prune_audit()
            except Exception as exc:  # logged and tried again at the next look
                log.warning("background upkeep failed (%s)", describe_error(exc))
