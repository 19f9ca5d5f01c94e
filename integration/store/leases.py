"""Sync work units and the leases `journey worker` processes hold on them.

A unit is one source's resource type (REST search) or its "$export" (Bulk
Data). A worker claims a due unit whose lease is free or expired, in one
short transaction: on PostgreSQL the candidate row is read FOR UPDATE SKIP
LOCKED, so workers racing for units each get a different one without
waiting; on SQLite (one writer at a time) the claim's conditional UPDATE is
what decides. Either way the UPDATE only succeeds if the lease is still
free, so two workers never hold one unit. The holder renews the lease while
it works; a worker that dies simply stops renewing, and once the lease runs
out another worker claims the unit and resumes from the sync's checkpoint.

Times are ISO 8601 UTC text written by the workers' clocks (as everywhere in
the store); leases are tens of seconds, far above the skew of synced clocks.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import ColumnElement, Connection, Row, and_, or_, select, update

from integration.errors import IntegrationError
from integration.store.schema import sync_units
from integration.store.upsert import insert_ignore
from mappings.dates import parse_interval, utc_iso


@dataclass(frozen=True, slots=True)
class SyncUnit:
    source: str
    unit: str
    next_run_at: str
    lease_owner: str | None
    lease_until: str | None
    attempts: int
    last_started_at: str | None
    last_finished_at: str | None
    last_error: str | None


class LeaseLost(IntegrationError):
    """The lease ran out and another worker took the unit: stop working on it."""

    def __init__(self, source: str, unit: str) -> None:
        super().__init__(f"lease on {source}/{unit} lost: another worker took it over")
        self.source = source
        self.unit = unit


class SyncAlreadyRunning(IntegrationError):
    """Another run holds a lease on one of the units a sync needs."""

    def __init__(self, source: str, unit: str, owner: str | None, until: str | None) -> None:
        super().__init__(
            f"a sync of {source} is already running: {unit} is held by {owner} until {until}"
        )
        self.source = source
        self.unit = unit
        self.owner = owner
        self.until = until


def later(moment: str, seconds: float) -> str:
    return utc_iso(parse_interval(moment, "time").start + timedelta(seconds=seconds))


def ensure_units(conn: Connection, units: Iterable[tuple[str, str]], now: str) -> None:
    """Add the units a configuration names; new ones are due at once."""
    rows = [
        {"source": source, "unit": unit, "next_run_at": now, "attempts": 0}
        for source, unit in units
    ]
    insert_ignore(conn, sync_units, rows, keys=("source", "unit"))


def _free(now: str) -> ColumnElement[bool]:
    return or_(sync_units.c.lease_until.is_(None), sync_units.c.lease_until < now)


def claim_unit(
    conn: Connection,
    owner: str,
    now: str,
    lease_seconds: float,
    sources: Iterable[str],
) -> SyncUnit | None:
    """Take the longest-waiting due unit of these sources, or None when none is due."""
    candidate = conn.execute(
        select(sync_units.c.source, sync_units.c.unit)
        .where(sync_units.c.source.in_(list(sources)), sync_units.c.next_run_at <= now, _free(now))
        .order_by(sync_units.c.next_run_at, sync_units.c.source, sync_units.c.unit)
        .limit(1)
        .with_for_update(skip_locked=True)
    ).first()
    if candidate is None:
        return None
    claimed = conn.execute(
        update(sync_units)
        .where(_key(candidate.source, candidate.unit), _free(now))
        .values(
            lease_owner=owner,
            lease_until=later(now, lease_seconds),
            last_started_at=now,
        )
    )
    if claimed.rowcount != 1:
        return None  # taken between our read and our write (SQLite has no row locks)
    return load_unit(conn, candidate.source, candidate.unit)


def claim_units(
    conn: Connection,
    owner: str,
    now: str,
    lease_seconds: float,
    source: str,
    units: Iterable[str],
    gone: str | None = None,
) -> list[SyncUnit]:
    """Take every one of `units` of `source`, due or not (a sync started by hand), or
    none: raises `SyncAlreadyRunning` naming a unit another run holds (the
    caller's transaction then rolls back the others). Leases held by `gone`, an
    owner known to have died, count as free."""
    wanted = list(units)
    ensure_units(conn, [(source, unit) for unit in wanted], now)
    free = _free(now) if gone is None else or_(_free(now), sync_units.c.lease_owner == gone)
    claimed = conn.execute(
        update(sync_units)
        .where(sync_units.c.source == source, sync_units.c.unit.in_(wanted), free)
        .values(lease_owner=owner, lease_until=later(now, lease_seconds), last_started_at=now)
    )
    held = [unit for unit in all_units(conn, source) if unit.unit in wanted]
    if claimed.rowcount != len(wanted):
        busy = next(unit for unit in held if unit.lease_owner != owner)
        raise SyncAlreadyRunning(source, busy.unit, busy.lease_owner, busy.lease_until)
    return held


def renew_lease(
    conn: Connection, unit: SyncUnit, owner: str, now: str, lease_seconds: float
) -> None:
    """Extend our lease; raises `LeaseLost` if it is no longer ours."""
    renewed = conn.execute(
        update(sync_units)
        .where(_key(unit.source, unit.unit), sync_units.c.lease_owner == owner)
        .values(lease_until=later(now, lease_seconds))
    )
    if renewed.rowcount != 1:
        raise LeaseLost(unit.source, unit.unit)


def release_unit(
    conn: Connection, unit: SyncUnit, owner: str, now: str, next_run_at: str, error: str | None
) -> bool:
    """Give the unit back, due again at `next_run_at`. False if the lease was lost first
    (the other worker's run then decides what happens next)."""
    released = conn.execute(
        update(sync_units)
        .where(_key(unit.source, unit.unit), sync_units.c.lease_owner == owner)
        .values(
            lease_owner=None,
            lease_until=None,
            next_run_at=next_run_at,
            last_finished_at=now,
            last_error=error,
            attempts=sync_units.c.attempts + 1 if error else 0,
        )
    )
    return released.rowcount == 1


def load_unit(conn: Connection, source: str, unit: str) -> SyncUnit | None:
    row = conn.execute(select(sync_units).where(_key(source, unit))).first()
    return _unit(row) if row is not None else None


def all_units(conn: Connection, source: str | None = None) -> list[SyncUnit]:
    query = select(sync_units).order_by(sync_units.c.source, sync_units.c.unit)
    if source is not None:
        query = query.where(sync_units.c.source == source)
    return [_unit(row) for row in conn.execute(query)]


def _key(source: str, unit: str) -> ColumnElement[bool]:
    return and_(sync_units.c.source == source, sync_units.c.unit == unit)


def _unit(row: Row[Any]) -> SyncUnit:
    # SyncUnit's fields are the table's columns, by name.
    return SyncUnit(**row._mapping)
