"""Deriving the journey in a process of its own, beside a long pull that keeps storing.

A REST pull is bound by our CPU, not the network: each resource is validated and
stored, then derived (identity linking and mapping), all under one GIL. Derivation
reads only what is stored, so on PostgreSQL it runs in another process, on another
core, while the pull's own process goes on fetching and storing: `request` asks for a
round and returns at once, `finish` waits for the last round, after the last page.

Only on PostgreSQL, and only once a pull has stored `batch_size` resources, from its
first round on (see ingest/policy.py): a short incremental sync derives in-process,
cheaper than starting a process. On SQLite the store has one writer, and a derivation
batch holds it while it computes, so the pull's storing waits for it anyway. Measured
on 4,500 resources from the latency-bound peer: on SQLite no faster on a quiet
machine (2.76-2.77 s against 2.71-2.93 s in-process) and 10% slower with a core busy
elsewhere; on PostgreSQL 3.38-3.66 s against 4.30-4.32 s.

The process maps with the store's rule pack (`store_pack`), which is what
`update_journey` resolves to in any process, and exits when the process that started
it dies, as the intake workers do. If it cannot start or dies, nothing is lost: what
it had not derived stays flagged in the store, and the later rounds (at least
`finish`'s) derive it in this process, saying so in the log. An error of the store
inside a round is raised by the next `request` or by `finish`, as an in-process
round's would be by that round.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from sqlalchemy import Engine

from integration.config import Settings
from integration.journey.derivers.base import JourneyUpdate
from integration.journey.rule_packs import store_pack
from integration.journey.update import update_journey
from integration.logs import LogFormat, configure_logging
from integration.store.engine import create_store_engine
from integration.worker_process import start_worker
from mappings.rulepack import RulePack

log = logging.getLogger(__name__)

# The derive process's own engine, opened at its first round (one per process).
_engines: dict[str, Engine] = {}


def _start_derive_worker(parent: int, log_level: str, log_format: LogFormat) -> None:
    """The derive process's initializer: it ends with its parent, and logs as it does."""
    start_worker(parent)
    configure_logging(log_level, log_format)


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
    """Rounds of `update_journey` in one worker process, one round at a time.

    `request` and `finish` are called by one thread at a time (the pull's storer, under
    its lock); `close` may come from another (the pull ending on an error or cancelled),
    so it and the start of a round take `_lock`."""

    def __init__(self, engine: Engine, pack: RulePack, settings: Settings) -> None:
        self._engine = engine
        self._pack = pack
        self._batch_size = settings.batch_size
        self._url = engine.url.render_as_string(hide_password=False)
        self.summary = JourneyUpdate()
        self._running: Future[JourneyUpdate] | None = None
        self._lock = threading.Lock()
        self._closed = False
        self._executor: ProcessPoolExecutor | None = ProcessPoolExecutor(
            1,
            # spawn, not fork: the pull's process has threads (the event loop's workers).
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_start_derive_worker,
            initargs=(os.getpid(), settings.log_level, settings.log_format),
        )

    def request(self) -> None:
        """Derive what is stored by now, without waiting. While a round runs, nothing:
        the next request or `finish` starts another (a round takes each type's pending
        rows as it reaches that type, so it may miss a page stored meanwhile). The
        previous round's store error, if any, is raised here."""
        if self._running is not None and not self._running.done():
            return
        self._collect()
        self._submit()

    def finish(self) -> JourneyUpdate:
        """After the last page is stored: wait for the running round, derive whatever is
        still pending, stop the process; the counts of every round (less those of a
        round the process died in: it could not send them)."""
        try:
            self._collect()
            self._submit()
            self._collect()
        finally:
            self.close()
        return self.summary

    def close(self) -> None:
        """Stop the process, and derive nothing more; a round under way ends its batch
        (each commits on its own, and what it had not reached stays flagged)."""
        with self._lock:
            self._closed = True
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)

    def _submit(self) -> None:
        with self._lock:
            if self._closed:
                return
            executor = self._executor
            if executor is not None:
                try:
                    self._running = executor.submit(_derive_round, self._url, self._batch_size)
                    return
                except (BrokenProcessPool, OSError, RuntimeError) as exc:
                    # Died, or could not start (no memory, no process slots).
                    self._broken(exc)
        self.summary.add(update_journey(self._engine, self._pack, self._batch_size))

    def _collect(self) -> None:
        """Wait for the running round, if any, and count it."""
        running, self._running = self._running, None
        if running is None:
            return
        try:
            self.summary.add(running.result())
        except BrokenProcessPool as exc:
            with self._lock:
                self._broken(exc)

    def _broken(self, exc: BaseException) -> None:
        """The process is gone (the caller holds `_lock`): rounds go on in this one."""
        log.warning(
            "the derive process ended unexpectedly (%s): the journey is derived in this "
            "process instead (nothing stored is lost: what it had not derived is still "
            "flagged)",
            type(exc).__name__,
        )
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)
