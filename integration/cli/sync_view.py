"""What `journey sync` and `journey sources` show: live progress, summaries, the sources table."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rich.markup import escape
from rich.progress import Progress, TaskID
from rich.table import Table

from connectors.rest.search import SearchPage
from integration.cli.console import console, stderr
from integration.cli.mapped_view import mapped_line, print_mapping_failures
from integration.store.leases import SyncUnit
from integration.sync.summary import SyncSummary

SYNC_COLUMNS = (
    "resource type", "mode", "pages", "fetched", "new", "changed", "unchanged",
    "quarantined", "checkpoint", "error",
)  # fmt: skip


def page_progress(progress: Progress) -> Callable[[str, str, SearchPage], None]:
    tasks: dict[str, TaskID] = {}

    def on_page(name: str, resource_type: str, page: SearchPage) -> None:
        if resource_type not in tasks:
            tasks[resource_type] = progress.add_task(
                f"{name} {resource_type}", total=page.total, pages=0
            )
        progress.update(tasks[resource_type], advance=len(page.resources), pages=page.number)

    return on_page


def export_progress(progress: Progress, name: str) -> Callable[[str, str], None]:
    """A line per Bulk Data export step (kick-off, the server's X-Progress) and per type."""
    tasks: dict[str, TaskID] = {}

    def on_export(what: str, detail: str) -> None:
        if what not in tasks:
            tasks[what] = progress.add_task(f"{name} {what}", total=None, pages=0)
        progress.update(tasks[what], description=f"{name} {what}: {detail}")

    return on_export


def print_sync_summary(summary: SyncSummary) -> None:
    title = f"Sync of '{summary.source}' ({summary.seconds:.1f} s, {summary.retries} retries)"
    table = Table(title=title)
    for column in SYNC_COLUMNS:
        table.add_column(column)
    stored = summary.stored
    for resource_type, state in summary.types.items():
        counts = stored.by_type.get(resource_type) if stored else None
        numbers = (
            (counts.new, counts.changed, counts.unchanged, counts.quarantined)
            if counts
            else (0, 0, 0, 0)
        )
        table.add_row(
            resource_type,
            "full" if state.full else "incremental",
            str(state.pages),
            str(state.fetched),
            *(str(n) for n in numbers),
            state.checkpoint or "",
            state.error or "",
        )
    console.print(table)
    if summary.derive.resources or not summary.error:  # a sync that failed at once mapped nothing
        console.print(f"  {mapped_line(summary.derive)}", highlight=False)
        print_mapping_failures(summary.derive.mapping_failures)
    if summary.error:
        stderr.print(f"[red]{summary.source}:[/] {summary.error}", highlight=False)
    for note in summary.notes:
        console.print(f"  [cyan]{summary.source}:[/] {note}", highlight=False)
    for state in summary.types.values():
        if state.deleted or state.history or state.reconciled:
            how = ", ".join(
                word
                for word, done in (
                    ("read from its history", state.history),
                    ("reconciled", state.reconciled),
                )
                if done
            )
            console.print(
                f"  {state.resource_type}: {state.deleted} deleted by the source"
                + (f" ({how})" if how else ""),
                highlight=False,
            )
    for state in summary.types.values():
        for warning in state.warnings:
            console.print(f"  [yellow]{state.resource_type}:[/] {warning}", highlight=False)
    if stored and stored.problems:
        quarantined = stored.total("quarantined")
        console.print(f"[yellow]{quarantined} quarantined[/] (`journey quarantine` lists them)")
        for problem in stored.problems[:10]:
            console.print(f"  {problem}", markup=False, highlight=False)


SOURCE_COLUMNS = (
    "source", "kind", "mode", "base_url", "resource_type", "last_started", "last_finished",
    "checkpoint", "fetched", "new", "changed", "unchanged", "quarantined", "last_error",
)  # fmt: skip


def source_rows(view: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per source and resource type (a source never synced: one, without type)."""
    return [
        {
            "source": source["name"],
            **source,
            **state,
            **{key: counts.get(key) for key in ("fetched", "new", "changed", "unchanged")},
            "quarantined": counts.get("quarantined"),
        }
        for source in view
        for state in source["resource_types"] or [{}]
        for counts in [state.get("last_counts") or {}]
    ]


def print_sources(view: list[dict[str, Any]], units: list[SyncUnit] | None = None) -> None:
    table = Table(title="Sources")
    for column in (
        "source",
        "kind",
        "base url",
        "type",
        "last sync",
        "checkpoint",
        "fetched",
        "new",
        "quarantined",
        "last error",
    ):
        table.add_column(column)
    for row in source_rows(view):
        table.add_row(
            row["name"],
            row["kind"],
            row["base_url"],
            row.get("resource_type") or "-",
            row.get("last_finished") or "never",
            row.get("checkpoint") or "",
            *(_count(row[key]) for key in ("fetched", "new", "quarantined")),
            escape(row.get("last_error") or ""),
        )
    console.print(table)
    for source in view:
        roster = source.get("roster")
        if roster is not None:
            console.print(
                f"{source['name']}: member roster of {roster['members']} as last read; "
                f"a member who leaves: {LEAVING[roster['on_leaving']]}"
                + (f" ({roster['retired']} retired now)" if roster["retired"] else ""),
                highlight=False,
            )
        export = source["export_in_progress"]
        if export is not None:
            console.print(
                f"{source['name']}: export kicked off at {export['kicked_off_at']} not finished "
                f"({export['files_stored']} file(s) stored); the next `journey sync` resumes it",
                highlight=False,
            )
    if units:
        print_units(units)


LEAVING = {
    "keep": "their data stays in the journey (keep)",
    "retire": "their data leaves the journey, stored, back if they return (retire)",
    "purge": "their data is purged from the store (purge)",
}


def _count(value: int | None) -> str:
    return "" if value is None else str(value)


def print_units(units: list[SyncUnit]) -> None:
    """What `journey worker` processes are doing: who holds which unit, what is next."""
    table = Table(title="Worker units")
    for column in ("source", "unit", "held by", "lease until", "next run", "failures", "error"):
        table.add_column(column)
    for unit in units:
        table.add_row(
            unit.source,
            unit.unit,
            unit.lease_owner or "-",
            unit.lease_until or "",
            unit.next_run_at,
            str(unit.attempts),
            unit.last_error or "",
        )
    console.print(table)


def unit_line(unit: SyncUnit, summary: SyncSummary | None, error: str | None) -> str:
    """One line per unit a worker finished: ids and counts, never resource content."""
    where = f"{unit.source}/{unit.unit}"
    if summary is None:
        return f"{where}: stopped: {error}"
    stored = summary.stored
    counts = (
        f"{stored.total('new')} new, {stored.total('changed')} changed, "
        f"{stored.total('quarantined')} quarantined"
        if stored is not None
        else ""
    )
    outcome = f"failed: {error}" if error else "done"
    return f"{where}: {outcome} ({counts}; {summary.seconds:.1f} s)"
