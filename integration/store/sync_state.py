"""Checkpoints and last-run outcomes of source syncs.

A checkpoint is saved in the same transaction as the page it covers, so it
never points past data that is not stored, and it never moves backwards: a
full pull walks from the oldest data again, and a run that read less than an
earlier one must not make the next incremental sync fetch it all again.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Connection, select

from integration.store.schema import sync_state
from integration.store.upsert import upsert


def load_checkpoint(conn: Connection, source: str, resource_type: str) -> str | None:
    return conn.execute(
        select(sync_state.c.checkpoint).where(
            sync_state.c.source == source, sync_state.c.resource_type == resource_type
        )
    ).scalar_one_or_none()


def later_checkpoint(a: str | None, b: str | None) -> str | None:
    """The later of two checkpoints (ISO instants, to the second or millisecond, any
    offset); `a` when they are the same instant. An unreadable one loses."""
    if a is None or b is None:
        return a or b
    first, second = _instant(a), _instant(b)
    if second is None:
        return a
    if first is None:
        return b
    return b if second > first else a


def _instant(checkpoint: str) -> datetime | None:
    """To the microsecond (FHIR date parsing keeps whole seconds); None without an offset."""
    try:
        moment = datetime.fromisoformat(checkpoint)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def save_checkpoint(conn: Connection, source: str, resource_type: str, checkpoint: str) -> str:
    """Move the checkpoint forward to `checkpoint`; returns the one kept (the stored one,
    when `checkpoint` is not later). The caller holds the unit's lease, so no other
    run writes this row between the read and the write."""
    current = load_checkpoint(conn, source, resource_type)
    kept = later_checkpoint(current, checkpoint)
    if current is not None and kept == current:
        return current
    upsert(
        conn,
        sync_state,
        [{"source": source, "resource_type": resource_type, "checkpoint": checkpoint}],
        keys=("source", "resource_type"),
        update=("checkpoint",),
    )
    return checkpoint


def record_run(
    conn: Connection,
    source: str,
    resource_type: str,
    started: str,
    finished: str,
    error: str | None,
    counts: dict[str, Any],
) -> None:
    """The outcome of a run; one without an error is also the last success."""
    row = {
        "source": source,
        "resource_type": resource_type,
        "last_started": started,
        "last_finished": finished,
        "last_error": error,
        "last_counts": orjson.dumps(counts).decode(),
        "last_succeeded": None if error else finished,
    }
    # A failed run keeps the success before it: how stale the copy is goes on growing.
    succeeded = () if error else ("last_succeeded",)
    upsert(
        conn,
        sync_state,
        [row],
        keys=("source", "resource_type"),
        update=("last_started", "last_finished", "last_error", "last_counts", *succeeded),
    )


def states(conn: Connection) -> list[dict[str, Any]]:
    rows = conn.execute(
        select(sync_state).order_by(sync_state.c.source, sync_state.c.resource_type)
    )
    return [
        {
            **dict(row._mapping),
            "last_counts": orjson.loads(row.last_counts) if row.last_counts else {},
        }
        for row in rows
    ]


def states_by_source(conn: Connection) -> dict[str, list[dict[str, Any]]]:
    """`states`, grouped by source name."""
    grouped: dict[str, list[dict[str, Any]]] = {}
    for state in states(conn):
        grouped.setdefault(state["source"], []).append(state)
    return grouped
