"""Store-wide locks for one transaction, the same on SQLite and PostgreSQL.

Deriving the journey reads pending resources, then deletes and rewrites
their job records and person links. Two processes doing that at once (an
API answering a push while a worker syncs) would both read the same pending
rows and write the same records: a unique-key error on PostgreSQL, a stale
write on SQLite. Each derivation batch therefore starts by taking the
"derive" lock, and reads what is pending only once it holds it.

A push checks, then writes: a conditional create (If-None-Exist) looks for a
match and creates when there is none. Two API processes doing that at once
would both find none and both create. A push's transaction therefore starts
by taking the "push" lock (one process already takes its pushes in turn).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager

from sqlalchemy import Connection, Engine, update

try:
    import fcntl
except ImportError:  # Windows: no file locks (migrations, bulk writers stepping aside)
    fcntl = None  # type: ignore[assignment]

from integration.errors import StoreError
from integration.store.schema import store_locks

DERIVE = "derive"
WRITERS_FILE = "writers"
PUSH = "push"


def hold(conn: Connection, name: str, now: str) -> None:
    """Take the named lock until this transaction ends (waiting while another holds it)."""
    taken = conn.execute(update(store_locks).where(store_locks.c.name == name).values(taken_at=now))
    if taken.rowcount != 1:
        raise StoreError(f"no store lock named {name!r}: run `journey db upgrade`")


# ---- SQLite: interactive writes go first ----------------------------------------------
#
# SQLite has one writer at a time, and a connection waiting for it polls (its busy
# handler sleeps up to 100 ms between tries). A bulk import or derivation commits a
# batch and begins the next within a millisecond, so a push waiting meanwhile could
# miss every gap: seconds for a one-Patient PUT. Interactive writers (pushes) hold a
# shared lock on a file beside the database while they write; bulk writers look at
# it between transactions and, when someone is waiting, let them through first.
# PostgreSQL queues lock waiters fairly by itself: there this is a no-op.


def sqlite_lock_file(engine: Engine, suffix: str) -> str | None:
    """A file beside the store's SQLite database to flock, or None where there is none to
    lock for (PostgreSQL, an in-memory database, a system without fcntl)."""
    database = engine.url.database
    if engine.url.get_backend_name() != "sqlite" or fcntl is None:
        return None
    if not database or database == ":memory:":
        return None
    return f"{database}.{suffix}"


@contextmanager
def file_lock(path: str | None, shared: bool = False) -> Iterator[None]:
    """Hold an flock on `path` (nothing to hold when it is None)."""
    if path is None:
        yield
        return
    with open(path, "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def interactive_writes(engine: Engine) -> AbstractContextManager[None]:
    """Around a push's transactions: bulk writers step aside until it is done."""
    return file_lock(sqlite_lock_file(engine, WRITERS_FILE), shared=True)


def let_interactive_writes_through(engine: Engine) -> None:
    """Between a bulk writer's transactions: if a push is waiting, wait until it is done."""
    path = sqlite_lock_file(engine, WRITERS_FILE)
    if path is None:
        return
    with open(path, "a+b") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fcntl.flock(handle, fcntl.LOCK_EX)  # until every interactive writer is through
        fcntl.flock(handle, fcntl.LOCK_UN)
