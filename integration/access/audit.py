"""The audit trail's writer: requests queue their audit rows, a thread writes them in
batches (so the audit costs a read a queue put, not a commit), at most
`flush_seconds` later and at shutdown. A row is queued when the response is known,
failures included; a store that is away is tried again (the rows are kept, up to
`MAX_HELD`, beyond which the oldest are dropped with a logged count)."""

from __future__ import annotations

import logging
import queue
import threading
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError

from integration.clock import utc_now
from integration.store import audit as audit_store

log = logging.getLogger(__name__)
MAX_HELD = 100_000
COLUMNS = (
    "recorded",
    "action",
    "subtype",
    "outcome",
    "client",
    "address",
    "person_id",
    "method",
    "path",
    "query",
    "status",
    "request_id",
)


def outcome_of(status: int) -> str:
    """FHIR AuditEvent.outcome: 0 success, 4 minor failure (the client's), 8 serious
    (the server's)."""
    return "0" if status < 400 else "4" if status < 500 else "8"


# Column widths (schema.audit_events): a request names whatever path, method or id it
# likes, and a row the store refuses must never be what an attacker sends.
WIDTHS = {
    "subtype": 40,
    "client": 200,
    "address": 64,
    "person_id": 64,
    "method": 10,
    "request_id": 64,
    "path": 2000,
    "query": 4000,
}


def _fits(name: str, value: Any) -> Any:
    if not isinstance(value, str):
        return value
    # PostgreSQL text cannot hold NUL: kept visible as U+FFFD.
    clean = value.replace("\x00", "\ufffd")
    width = WIDTHS.get(name)
    return clean if width is None or len(clean) <= width else clean[: width - 1] + "\u2026"


def audit_row(**values: Any) -> dict[str, Any]:
    """A row with every column (absent ones None), each value cut to fit its column,
    recorded now unless given."""
    row = {name: _fits(name, values.get(name)) for name in COLUMNS}
    row["recorded"] = row["recorded"] or utc_now()
    return row


class AuditWriter:
    def __init__(self, engine: Engine | None = None, flush_seconds: float = 0.1) -> None:
        self._engine = engine
        self._flush_seconds = flush_seconds
        self._queue: queue.SimpleQueue[dict[str, Any]] = queue.SimpleQueue()
        self._held: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def record(self, row: dict[str, Any]) -> None:
        self._queue.put(row)

    def start(self, engine: Engine) -> None:
        self._engine = engine
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="audit", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        self.flush()

    def flush(self) -> None:
        """Write what is queued now (an auditor's read calls this first)."""
        with self._lock:
            while True:
                try:
                    self._held.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            if not self._held or self._engine is None:
                return
            try:
                with self._engine.begin() as conn:
                    audit_store.append(conn, self._held)
            except (DataError, IntegrityError):
                # One row the store refuses must not hold up the others: one at a time.
                self._held = self._write_each(self._held)
                return
            except DBAPIError as exc:
                log.warning(
                    "audit rows not written yet (%d held): %s", len(self._held), type(exc).__name__
                )
                if len(self._held) > MAX_HELD:
                    dropped = len(self._held) - MAX_HELD
                    log.error("audit: %d oldest rows dropped, the store is away too long", dropped)
                    del self._held[:dropped]
                return
            self._held = []

    def _write_each(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Write rows one by one: a row the store refuses is logged (its method, never
        its values) and dropped; rows it cannot take now are kept for the next round."""
        assert self._engine is not None
        kept: list[dict[str, Any]] = []
        for row in rows:
            try:
                with self._engine.begin() as conn:
                    audit_store.append(conn, [row])
            except (DataError, IntegrityError) as exc:
                log.error("audit row refused by the store: %s", type(exc).__name__)
            except DBAPIError:
                kept.append(row)
        return kept

    def _run(self) -> None:
        while not self._stop.wait(self._flush_seconds):
            try:
                self.flush()
            except Exception:  # logged; the next round tries again
                log.exception("audit flush failed")
