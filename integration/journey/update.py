"""Bring the journey zone up to date with the raw zone.

Works through current resources flagged `needs_derive`, type by type in the order
the registry declares (`integration.derived_types`): Patients (identity),
Conditions (re-flag the Encounters that point to them), Encounters (one job record
each), QuestionnaireResponses (all of a patient's responses together, since a
repeat screen's job depends on earlier ones). What a type's batch becomes is its
deriver's business (`integration.journey.derivers`); this module owns the batches,
their transactions and the isolation of failures. Each batch commits on its own,
so an interrupted run resumes where it stopped. `journey remap` flags everything
and runs this again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, Engine

from integration.clock import utc_now
from integration.derived_types import DERIVED
from integration.gc_policy import batch_collection
from integration.journey.derivers import resolve
from integration.journey.derivers.base import (
    CurrentResource,
    Derive,
    ResourceKey,
    isolate,
)
from integration.journey.derivers.base import JourneyUpdate as JourneyUpdate
from integration.journey.rule_packs import pack_for_update
from integration.journey.withdrawal import withdraw
from integration.store import derivation
from integration.store.engine import GrowingTables
from integration.store.errors import describe_error, store_unavailable
from integration.store.job_records import LEFT_ROSTER
from integration.store.locks import DERIVE, hold, let_interactive_writes_through
from integration.store.populations import of_retired_members
from integration.store.quarantine import close_mapped
from integration.store.queries import records_in_no_journey
from integration.store.rule_pack_state import read_stored_pack
from mappings.rulepack import RulePack

DeriveProgress = Callable[[int], None]
log = logging.getLogger(__name__)
# Every table derivation grows (tests/integration/test_statistics.py checks an import
# leaves none without statistics on PostgreSQL).
JOURNEY_TABLES = (
    "current_resources",
    "job_records",
    "person_links",
    "people",
    "patient_identifiers",
    "patient_demographics",
    "patient_blocking_keys",
    "patient_matches",
    "patient_match_history",
    "name_counts",
    "resource_links",
    "episodes",
    "episodes_stale",
    "feed_events",
)


def pending_count(engine: Engine) -> int:
    with engine.connect() as conn:
        return derivation.count_pending(conn)


def flag_all(engine: Engine) -> int:
    """Mark every derivable resource for derivation again (`journey remap`)."""
    with engine.begin() as conn:
        return derivation.flag_all_for_derivation(conn)


def update_journey(
    engine: Engine,
    pack: RulePack,
    batch_size: int = 500,
    on_progress: DeriveProgress | None = None,
    only: Iterable[ResourceKey] | None = None,
) -> JourneyUpdate:
    """Derive what is pending, or with `only` just those resources (source, type, id)
    and what they bring along: a push maps what it wrote, not the whole store's backlog.

    A resource whose derivation fails is isolated: its batch is derived again one
    resource at a time, the failing one becomes an explained `unclassified` record
    (if its type becomes job records) and a `mapping` quarantine entry, and everyone
    else's journey goes on. Only the store itself failing stops the run."""
    summary = JourneyUpdate()
    # The store's pack, should another process have set a new one since `pack` was loaded.
    pack = pack_for_update(engine, pack)
    progress = on_progress or (lambda _n: None)
    scope = set(only) if only is not None else None
    # In the registry's order: a type after those its derivation reads.
    steps = [(entry.resource_type, resolve(entry)) for entry in DERIVED]
    growth = GrowingTables(engine, JOURNEY_TABLES)
    with batch_collection():
        for resource_type, step in steps:
            while True:
                if scope is None:  # a bulk run: a push waiting to write goes first
                    let_interactive_writes_through(engine)
                done = _derive_batch(engine, pack, resource_type, step, batch_size, scope, summary)
                if not done:
                    break
                progress(done)
                growth.grew(done)
    growth.finish()
    # The people whose records changed are marked; their kept episodes (what the cohort
    # measures read) are recomputed off this path: by `journey serve` in the background,
    # or by `journey outcomes` before it reports.
    return summary


def derive_written(
    conn: Connection,
    pack: RulePack,
    written: Sequence[CurrentResource],
    stored: Sequence[ResourceKey] = (),
    batch_size: int = 500,
) -> JourneyUpdate | None:
    """Derive what a push wrote inside the push's own transaction: `written` as it is
    in memory (each the current version, just flagged), `stored` read as pending, as
    `update_journey` with `only` would, and whatever the derivers take on. No
    transaction of its own and no re-reading of what the push holds in memory.

    Returns None, having changed nothing (a savepoint is rolled back), where it does
    not apply: the store names another rule pack, or a derivation failed. The caller
    then runs `update_journey` with `only` once its transaction is committed, which
    isolates the failing resource as always."""
    held = read_stored_pack(conn)
    if held is None or held.label != pack.label:
        return None
    summary = JourneyUpdate()
    in_memory = {c.key: c for c in written}
    scope = set(in_memory) | set(stored)
    try:
        with conn.begin_nested(), batch_collection():
            hold(conn, DERIVE, utc_now())
            for entry in DERIVED:
                resource_type, step = entry.resource_type, resolve(entry)
                while True:
                    mine = sorted(k for k in scope if k[1] == resource_type)[:batch_size]
                    rest = [k for k in mine if k not in in_memory]
                    batch = [in_memory.pop(k) for k in mine if k in in_memory]
                    if rest:
                        batch += derivation.pending_resources(
                            conn, resource_type, batch_size, among=rest
                        )
                        batch.sort(key=lambda c: (c.source, c.resource_id))
                    if not batch:
                        break
                    found = JourneyUpdate()
                    more = _derive_in(conn, step, batch, pack, found)
                    found.resources += len(batch)
                    summary.add(found)
                    # Done with, pending or not: what a deriver flags comes back in.
                    scope.difference_update(mine)
                    scope.update(more)
    except Exception as exc:
        # Rolled back to the savepoint: the push keeps what it wrote, as when mapping
        # after it fails (the store busy, say), and mapping after it decides.
        log.info("derivation inside the push failed (%s): derived after it", describe_error(exc))
        return None
    return summary


def _derive_batch(
    engine: Engine,
    pack: RulePack,
    resource_type: str,
    step: Derive,
    batch_size: int,
    scope: set[ResourceKey] | None,
    summary: JourneyUpdate,
) -> int:
    """Derive one batch in one transaction; returns how many resources it derived
    (0: nothing left)."""
    if scope is not None and not any(key[1] == resource_type for key in scope):
        return 0  # nothing of this type in scope: no transaction, no wait for the lock
    batch: list[CurrentResource] = []
    found = JourneyUpdate()
    try:
        with engine.begin() as conn:
            hold(conn, DERIVE, utc_now())
            batch = _pending(conn, resource_type, batch_size, scope)
            if not batch:
                return 0
            more = _derive_in(conn, step, batch, pack, found)
    except Exception as exc:
        if not batch or store_unavailable(exc):
            raise
        found, more = JourneyUpdate(), []
        for current in batch:
            more.extend(_derive_alone(engine, pack, step, current, found))
    # A deriver may take on more than its batch (a patient's waiting responses).
    found.resources += len(batch)
    summary.add(found)
    if scope is not None:
        # Done with: a scoped run reads no further than what it was asked for.
        scope.difference_update(c.key for c in batch)
        scope.update(more)
    return found.resources


def _derive_in(
    conn: Connection,
    step: Derive,
    batch: list[CurrentResource],
    pack: RulePack,
    found: JourneyUpdate,
) -> list[ResourceKey]:
    """Run a step on resources read as pending, in the caller's transaction (which holds
    the derive lock), and mark them done. Those deleted by their source are taken out
    of the journey instead."""
    # Closed first: a resource failing again reopens its entry.
    close_mapped(conn, [c.key for c in batch], utc_now())
    deleted = [c for c in batch if c.deleted]
    live = [c for c in batch if not c.deleted]
    more = withdraw(conn, deleted, pack, found) if deleted else []
    retired = _of_retired_members(conn, live)
    if retired:
        more += withdraw(conn, retired, pack, found, LEFT_ROSTER)
        out = {c.key for c in retired}
        live = [c for c in live if c.key not in out]
    if live:
        more += step(conn, live, pack, found)
    derivation.mark_derived(conn, [c.key for c in batch])
    return more


def _of_retired_members(conn: Connection, live: list[CurrentResource]) -> list[CurrentResource]:
    """Those about a member retired for leaving their source's roster: they stay out of
    the journey (a remap, a new version) until the member is on the roster again."""
    retired = of_retired_members(conn, [c.key for c in live])
    return [c for c in live if c.key in retired] if retired else []


def _derive_alone(
    engine: Engine, pack: RulePack, step: Derive, current: CurrentResource, found: JourneyUpdate
) -> list[ResourceKey]:
    """One resource of a batch that failed: derived alone, or isolated as a failure."""
    try:
        with engine.begin() as conn:
            hold(conn, DERIVE, utc_now())
            return _derive_in(conn, step, [current], pack, found)
    except Exception as exc:
        if store_unavailable(exc):
            raise
        failure = describe_error(exc)
    log.warning(
        "derivation of %s/%s in source %s failed (%s): isolated, see `journey quarantine`",
        current.resource_type,
        current.resource_id,
        current.source,
        failure,
    )
    with engine.begin() as conn:
        hold(conn, DERIVE, utc_now())
        isolate(conn, [(current, failure)], pack, found)
        derivation.mark_derived(conn, [current.key])
    return []


def _pending(
    conn: Connection, resource_type: str, limit: int, scope: set[ResourceKey] | None = None
) -> list[CurrentResource]:
    if scope is None:
        return derivation.pending_resources(conn, resource_type, limit)
    mine = [(s, t, i) for s, t, i in scope if t == resource_type]
    if not mine:
        return []
    return derivation.pending_resources(conn, resource_type, limit, among=mine)


def orphan_records(
    engine: Engine, source: str, origins: Sequence[str], limit: int = 10
) -> tuple[int, list[dict[str, Any]]]:
    """Job records in no journey, of what `source` has from these origins (an import's
    files): their subject Patient has not arrived (yet), or they name no subject we
    can read. A count, and a few examples."""
    with engine.connect() as conn:
        return records_in_no_journey(conn, limit, source, origins)
