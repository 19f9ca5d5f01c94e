"""What `journey quarantine` prints: the entries as a table, JSON or CSV, and one entry
whole with its stored content."""

from __future__ import annotations

from typing import Any

from rich.markup import escape
from rich.table import Table

from integration.cli.console import console
from integration.cli.output import OutputFormat, print_csv, print_json
from integration.ingest.pipeline import resource_label

# The store's listed fields (`integration.store.quarantine.LISTED`), content aside.
ENTRY_COLUMNS = (
    "id", "stage", "source", "origin", "location", "resource_type", "resource_id",
    "fhir_path", "error", "content_truncated", "received_at", "last_seen_at",
    "resolved_at", "resolution", "resolution_note", "resolved_by",
)  # fmt: skip


def print_entries(rows: list[dict[str, Any]], chosen: OutputFormat) -> None:
    if chosen is OutputFormat.JSON:
        print_json(rows)
        return
    if chosen is OutputFormat.CSV:
        print_csv(ENTRY_COLUMNS, rows)
        return
    if not rows:
        console.print("The quarantine is empty.")
        return
    table = Table(title="Quarantine")
    for column in ("id", "stage", "source", "where", "resource", "path", "error", "closed"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            str(row["id"]),
            row["stage"],
            row["source"],
            escape(", ".join(part for part in (row["origin"], row["location"]) if part)),
            escape(resource_label(row["resource_type"], row["resource_id"])),
            escape(row["fhir_path"] or ""),
            escape(row["error"]),
            f"{row['resolution']} {row['resolved_at']}" if row["resolved_at"] else "",
        )
    console.print(table)
    console.print(
        "Fix the input and import it again, or remap once a mapping failure's cause is fixed: "
        "the entry closes as fixed. `--show ID` prints one; `journey quarantine dismiss ID "
        "--reason ...` closes one that will not be fixed."
    )


def print_entry(entry: dict[str, Any], chosen: OutputFormat) -> None:
    """One entry with its content as stored (as received, where it could be kept)."""
    if chosen is OutputFormat.JSON:
        print_json(entry)
        return
    for key, value in entry.items():
        if key != "content":
            console.print(f"[bold]{key}[/]: {escape(str(value))}", highlight=False)
    console.print("[bold]content[/]:")
    # Never wrapped: the content is shown as received, to copy or to diff.
    console.print(entry["content"] or "", markup=False, highlight=False, soft_wrap=True)
