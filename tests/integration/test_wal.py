"""SQLite's write-ahead log is checkpointed off the request path while the API runs."""

from __future__ import annotations

import time
from pathlib import Path

from sqlalchemy import text

from integration.store.engine import open_store
from integration.store.wal import WalCheckpointer


def autocheckpoint(engine: object) -> int:
    with engine.connect() as conn:  # type: ignore[attr-defined]
        return int(conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar_one())


class Counting(WalCheckpointer):
    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.runs = 0

    def checkpoint(self) -> None:
        super().checkpoint()
        self.runs += 1


def test_connections_leave_checkpoints_to_the_thread_while_it_runs(tmp_path: Path) -> None:
    engine = open_store(f"sqlite:///{tmp_path / 'wal.db'}")
    checkpointer = Counting(engine, interval=0.05)
    assert autocheckpoint(engine) == 1000
    checkpointer.start()
    try:
        assert autocheckpoint(engine) == 0  # a commit no longer pays for a checkpoint
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE t (x TEXT)"))
            conn.execute(text("INSERT INTO t VALUES (:x)"), [{"x": "v" * 500}] * 2000)
        deadline = time.monotonic() + 10
        while checkpointer.runs < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert checkpointer.runs >= 3  # the thread checkpoints, again and again
    finally:
        checkpointer.stop()
    assert autocheckpoint(engine) == 1000  # stopped: connections checkpoint themselves
    engine.dispose()


def test_it_does_nothing_for_postgresql() -> None:
    from sqlalchemy import create_engine

    engine = create_engine("postgresql+psycopg://nobody@127.0.0.1:1/none")
    checkpointer = WalCheckpointer(engine)
    assert not checkpointer.applies
    checkpointer.start()
    checkpointer.stop()
