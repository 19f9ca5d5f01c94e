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

from sqlalchemy import Connection, update

from integration.store.schema import store_locks

DERIVE = "derive"
PUSH = "push"


def hold(conn: Connection, name: str, now: str) -> None:
    """Take the named lock until this transaction ends (waiting while another holds it)."""
    taken = conn.execute(update(store_locks).where(store_locks.c.name == name).values(taken_at=now))
    if taken.rowcount != 1:
        raise LookupError(f"no store lock named {name!r}: run `journey db upgrade`")
