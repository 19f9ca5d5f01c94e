"""What the API's GET /sources and `journey sources` both answer about each configured
source: its types' sync state, an unfinished Bulk export, its worker units."""

from __future__ import annotations

from typing import Any

from integration.sources import SourceConfig, describe
from integration.store.bulk_state import ExportInProgress
from integration.store.leases import SyncUnit


def sources_view(
    configured: list[SourceConfig],
    by_source: dict[str, list[dict[str, Any]]],
    exports: dict[str, ExportInProgress],
    units: list[SyncUnit],
    rosters: dict[str, tuple[int, int]] | None = None,
) -> list[dict[str, Any]]:
    """Each configured source with its types' sync state, an unfinished export, its
    worker units and its member roster (`rosters`: members as last read, and members
    retired for leaving it): the items of GET /sources (which adds `running_since`,
    its own syncs) and of `journey sources --json`."""
    return [
        {
            **describe(source),
            "roster": roster_view(source, (rosters or {}).get(source.name, (0, 0))),
            "export_in_progress": export_view(exports.get(source.name)),
            "worker_units": [
                {
                    "unit": unit.unit,
                    "lease_owner": unit.lease_owner,
                    "lease_until": unit.lease_until,
                    "next_run_at": unit.next_run_at,
                    "failures_in_a_row": unit.attempts,
                    "last_started": unit.last_started_at,
                    "last_finished": unit.last_finished_at,
                    "last_error": unit.last_error,
                }
                for unit in units
                if unit.source == source.name
            ],
            "resource_types": [
                {
                    "resource_type": state["resource_type"],
                    "checkpoint": state["checkpoint"],
                    "last_started": state["last_started"],
                    "last_finished": state["last_finished"],
                    "last_error": state["last_error"],
                    "last_counts": state["last_counts"],
                }
                for state in by_source.get(source.name, [])
            ],
        }
        for source in configured
    ]


def roster_view(source: SourceConfig, counts: tuple[int, int]) -> dict[str, Any] | None:
    """A payer source's member roster: its size and what happens to a leaver's data."""
    if source.members is None:
        return None
    return {"on_leaving": source.members.on_leaving, "members": counts[0], "retired": counts[1]}


def export_view(export: ExportInProgress | None) -> dict[str, Any] | None:
    """A bulk source's unfinished export: the next sync resumes it."""
    if export is None:
        return None
    return {
        "kicked_off_at": export.kicked_off_at,
        "since": export.since,
        "transaction_time": export.transaction_time,
        "files_stored": len(export.files_done),
    }
