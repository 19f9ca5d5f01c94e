"""`journey purge`: remove a resource's every stored version and what was derived from
it, for data that must not be kept (`integration.journey.purge`); audited."""

from __future__ import annotations

import getpass
import sys
from typing import Annotated

import typer

from integration.cli.console import console
from integration.cli.output import AsJson, print_json
from integration.config import Settings
from integration.errors import ConfigError
from integration.journey.purge import NothingToPurge, purge_resource
from integration.journey.rule_packs import store_pack
from integration.source_names import is_source_name
from integration.store.engine import open_configured_store


def purge(
    ctx: typer.Context,
    source: Annotated[str, typer.Option(help="The source that holds the resource")],
    resource_type: Annotated[str, typer.Option("--type", help="Its FHIR type, e.g. Encounter")],
    resource_id: Annotated[str, typer.Option("--id", help="Its id at the source")],
    reason: Annotated[
        str | None, typer.Option(help="Why, kept in the audit trail (no patient data)")
    ] = None,
    with_their_data: Annotated[
        bool,
        typer.Option(
            "--with-their-data",
            help="For a Patient: every resource the source holds about it too",
        ),
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation")] = False,
    as_json: AsJson = False,
) -> None:
    """Remove every stored version of one resource and what the journey made of it.

    Unlike a deletion by its source, nothing is kept for audit but the audit entry of
    the purge itself. The journey follows as for a deletion."""
    settings: Settings = ctx.find_root().obj
    if not is_source_name(source):
        raise ConfigError(f"--source: {source!r} is not a source name")
    if reason is not None and len(reason) > 200:
        raise ConfigError("--reason: at most 200 characters")
    name = f"{source}/{resource_type}/{resource_id}"
    if with_their_data and resource_type != "Patient":
        raise ConfigError(f"--with-their-data: only for a Patient, not {resource_type}")
    if with_their_data:
        name += " and every resource about it"
    if not yes:
        if not sys.stdin.isatty():
            raise ConfigError(f"purging {name} cannot be undone: pass --yes to confirm")
        typer.confirm(f"Purge {name}? This cannot be undone", abort=True)
    engine = open_configured_store(settings)
    try:
        outcome = purge_resource(
            engine,
            store_pack(engine),
            (source, resource_type, resource_id),
            f"cli:{getpass.getuser()}",
            "CLI",
            reason,
            with_their_data,
        )
    except NothingToPurge:
        raise ConfigError(f"nothing stored for {name}: nothing purged") from None
    removed = outcome.removed
    if as_json:
        print_json(
            {
                "purged": f"{source}/{resource_type}/{resource_id}",
                "resources": len(outcome.keys),
                "versions": removed.versions,
                "job_records": removed.records,
                "quarantine_entries": removed.quarantine_entries,
                "feed_events_scrubbed": removed.feed_events_scrubbed,
            }
        )
        return
    console.print(
        f"Purged {name} ({len(outcome.keys)} resources): {removed.versions} stored "
        f"versions, {removed.records} job records, "
        f"{removed.quarantine_entries} quarantine entries; {removed.feed_events_scrubbed} "
        "feed events now say only that it was purged. The purge is in `journey audit`."
    )
    if outcome.mapping_error:
        console.print(
            f"The journey around it is not updated yet ({outcome.mapping_error}); "
            "the next mapping run catches up."
        )
