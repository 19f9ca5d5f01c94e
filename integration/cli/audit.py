"""`journey audit`: the audit trail in the terminal (who read or wrote whose data), and
the audit row `journey show` leaves."""

from __future__ import annotations

import getpass
from typing import Annotated

import typer
from rich.table import Table
from sqlalchemy import Engine

from integration.access.audit import audit_row
from integration.cli.console import console, day_option
from integration.cli.output import AsCsv, AsJson, OutputFormat, output_format, print_csv, print_json
from integration.config import Settings
from integration.errors import ConfigError
from integration.store import audit as audit_store
from integration.store.engine import open_configured_store

audit_app = typer.Typer(help="The audit trail: every read and write of patient data.")
AUDIT_COLUMNS = (
    "id", "recorded", "action", "subtype", "outcome", "client", "address", "person_id",
    "method", "path", "query", "status", "request_id",
)  # fmt: skip


def record_cli_read(engine: Engine, asked: str, resolved: str | None) -> None:
    with engine.begin() as conn:
        audit_store.append(
            conn,
            [
                audit_row(
                    action="R",
                    subtype="read",
                    outcome="0" if resolved else "4",
                    client=f"cli:{getpass.getuser()}",
                    person_id=resolved or asked,
                    method="CLI",
                    path="journey show",
                )
            ],
        )


@audit_app.callback(invoke_without_command=True)
def audit(
    ctx: typer.Context,
    patient: Annotated[str | None, typer.Option(help="Only this person's entries")] = None,
    since: Annotated[str | None, typer.Option(help="From this day (YYYY-MM-DD)")] = None,
    until: Annotated[str | None, typer.Option(help="Up to and including this day")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="Most entries")] = 100,
    as_json: AsJson = False,
    as_csv: AsCsv = False,
) -> None:
    """Who read or wrote whose data, newest first."""
    chosen = output_format(as_json, as_csv)
    settings: Settings = ctx.find_root().obj
    engine = open_configured_store(settings)
    try:
        start, end = day_option(since, "--since"), day_option(until, "--until", end=True)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    with engine.connect() as conn:
        rows = audit_store.search(conn, patient, start, end, limit)
    if chosen is OutputFormat.JSON:
        print_json(rows)
        return
    if chosen is OutputFormat.CSV:
        print_csv(AUDIT_COLUMNS, rows)
        return
    if not rows:
        console.print("No audit entries match.")
        return
    table = Table("recorded", "client", "action", "person", "what", "status")
    for row in rows:
        what = f"{row['method']} {row['path']}" + (f"?{row['query']}" if row["query"] else "")
        table.add_row(
            row["recorded"],
            row["client"],
            f"{row['action']} {row['subtype']}",
            row["person_id"] or "",
            what,
            str(row["status"] or ""),
        )
    console.print(table)
