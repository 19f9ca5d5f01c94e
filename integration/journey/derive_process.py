"""Deriving the journey in a process of its own, beside a long pull that keeps storing.

A REST pull is bound by our CPU, not the network: each resource is validated and
stored, then derived (identity linking and mapping), all under one GIL. Derivation
reads only what is stored, so on PostgreSQL it runs in another process, on another
core, while the pull's own process goes on fetching and storing: `request` asks for a
round and returns at once, `finish` waits for the last round, after the last page.

Only on PostgreSQL, and only once a pull has stored `batch_size` resources (see
ingest/policy.py): a short incremental sync derives in-process, cheaper than starting
a process. On SQLite the store has one writer, and a derivation batch holds it while
it computes, so the pull's storing waits for it anyway: measured on 4,500 resources
from the latency-bound peer, no faster on a quiet machine (2.76-2.77 s against
2.71-2.93 s) and 10% slower with a core busy elsewhere, where on PostgreSQL the same
pull took 3.38-3.66 s against 4.30-4.32 s in-process.

The process maps with the store's rule pack (`store_pack`), which is what
`update_journey` resolves to in any process, and exits when the process that started
it dies, as the intake workers do. If it cannot start or dies, nothing is lost: what
it had not derived stays flagged in the store, and `finish` derives it in this
process, saying so in the log. An error of the store inside a round is raised by
`finish`, as an in-process round's would be.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from sqlalchemy import Engine

from integration.journey.derivers.base import JourneyUpdate
from integration.journey.rule_packs import store_pack
from integration.journey.update import update_journey
from integration.store.engine import create_store_engine
from integration.worker_process import start_worker
from mappings.rulepack import RulePack

log = logging.getLogger(__name__)

# The derive process's own engine, opened at its first round (one per process).
_engines: dict[str, Engine] = {}


def _derive_round(url: str, batch_size: int) -> JourneyUpdate:
    """In the derive process: one `update_journey` over everything pending."""
    engine = _engines.get(url)
    if engine is None:
        engine = _engines[url] = create_store_engine(url)
    return update_journey(engine, store_pack(engine), batch_size)


def can_derive_apart(engine: Engine) -> bool:
    """Whether deriving in another process pays on this store: PostgreSQL only."""
    return engine.url.get_backend_name() == "postgresql"


class DeriveProcess:
    """Rounds of `update_journey` in one worker process, one round at a time."""

    def __init__(self, engine: Engine, pack: RulePack, batch_size: int) -> None:
        self._engine = engine
        self._pack = pack
        self._batch_size = batch_size
        self._url = engine.url.render_as_string(hide_password=False)
        self.summary = JourneyUpdate()
        self._running: Future[JourneyUpdate] | None = None
        self._executor: ProcessPoolExecutor | None = ProcessPoolExecutor(
            1,
            # spawn, not fork: the pull's process has threads (the event loop's workers).
            mp_context=multiprocessing.get_context("spawn"),
            initializer=start_worker,
            initargs=(os.getpid(),),
        )

    def request(self) -> None:
        """Derive what is stored by now, without waiting. While a round runs, nothing:
        the next request or `finish` starts another (a round takes each type's pending
        rows as it reaches that type, so it may miss a page stored meanwhile)."""
        if self._running is not None and not self._running.done():
            return
        self._collect()
        self._submit()

    def finish(self) -> JourneyUpdate:
        """After the last page is stored: wait for the running round, derive whatever is
        still pending, stop the process; the counts of every round."""
        try:
            self._collect()
            self._submit()
            self._collect()
        finally:
            self.close()
        return self.summary

    def close(self) -> None:
        """Stop the process; a round under way ends its batch (each commits on its own)."""
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    def _submit(self) -> None:
        if self._executor is None:  # broken: rounds go on in this process
            self.summary.add(update_journey(self._engine, self._pack, self._batch_size))
            return
        try:
            self._running = self._executor.submit(_derive_round, self._url, self._batch_size)
        except BrokenProcessPool:
            self._broken()
            self._submit()

    def _collect(self) -> None:
        """Wait for the running round, if any, and count it."""
        running, self._running = self._running, None
        if running is None:
            return
        try:
            self.summary.add(running.result())
        except BrokenProcessPool:
            self._broken()

    def _broken(self) -> None:
        log.warning(
            "the derive process ended unexpectedly: the journey is derived in this "
            "process instead (nothing stored is lost: what it had not derived is still "
            "flagged)"
        )
        self.close()
