"""The `journey` command line: import, serve, sync, worker, sources, remap, quarantine, status,
show, demo, db upgrade; `people` lives in `integration.cli.people`, `purge` in
`integration.cli.purge`, `subscriptions` and
`feed` in `integration.cli.subscriptions`, `audit` in `integration.cli.audit`. What
sync and sources print lives in `integration.cli.sync_view`, `show` in
`integration.cli.journey_view`, `quarantine` in `integration.cli.quarantine_view`.

Exit codes: 0 done; 1 an error stopped the command (message on stderr);
2 a sync finished but a source or resource type failed (see `journey sources`);
3 an import or remap finished but quarantined some input or could not map some resources
  (see `journey quarantine`).
"""

from __future__ import annotations

import asyncio
import getpass
import logging
import signal
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TransferSpeedColumn,
)
from rich.table import Table
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

import mappings
from connectors.files import discover
from fhir_journey.errors import JourneyError
from integration.cli.audit import audit_app, record_cli_read
from integration.cli.console import console, day_option, stderr
from integration.cli.demo_population import write_sample
from integration.cli.episodes_view import print_episodes, print_outcomes
from integration.cli.journey_view import (
    print_journey,
    print_journey_csv,
    print_journey_json,
    read_journey,
)
from integration.cli.mapped_view import mapped_line, print_mapping_failures, records_by_job
from integration.cli.output import AsCsv, AsJson, OutputFormat, output_format, print_csv, print_json
from integration.cli.people import people_app
from integration.cli.progress import in_bytes, progress_display
from integration.cli.purge import purge
from integration.cli.quarantine_view import print_entries, print_entry
from integration.cli.subscriptions import feed_app, subscriptions_app
from integration.cli.sync_view import (
    SOURCE_COLUMNS,
    export_progress,
    page_progress,
    print_sources,
    print_sync_summary,
    source_rows,
    unit_line,
)
from integration.clock import utc_now
from integration.config import Settings, load_settings
from integration.errors import ConfigError
from integration.ingest.pipeline import IngestSummary
from integration.ingest.policy import WayIn, ingest_pipeline
from integration.journey.episodes import refresh_episodes
from integration.journey.outcomes import OutcomeQuery, measures_csv, outcome_report
from integration.journey.rule_packs import set_store_pack, store_pack
from integration.journey.update import flag_all, pending_count, update_journey
from integration.logs import configure_logging
from integration.push_clients import PushClientConfig
from integration.source_names import SOURCE_NAME_RULE, is_source_name
from integration.sources import pick_sources
from integration.store import quarantine as quarantine_store
from integration.store import queries
from integration.store.bulk_state import exports_in_progress
from integration.store.engine import create_store_engine, migrate, open_configured_store
from integration.store.errors import describe_store_error
from integration.store.leases import SyncAlreadyRunning, all_units
from integration.store.populations import roster_counts
from integration.store.rule_pack_state import BUNDLED
from integration.store.sync_state import states_by_source
from integration.sync.context import SyncListener
from integration.sync.leased import default_owner, sync_leased
from integration.sync.runners import sync_source
from integration.sync.sources_view import sources_view
from integration.sync.worker import SyncWorker, WorkerStats
from integration.webhooks.delivery import DeliveryStats, WebhookDeliverer
from integration.webhooks.subscriptions import apply_config
from mappings.model import Job
from mappings.rulepack import RulePack

EXIT_SYNC_FAILED = 2
EXIT_QUARANTINED = 3
DEMO_API_KEY = "demo-key"
DEMO_PUSH_KEY = "demo-push-key"
DEMO_PUSH_SOURCE = "demo-ehr"

app = typer.Typer(
    # A traceback's locals would print resource content (PHI) to the terminal.
    pretty_exceptions_show_locals=False,
    help="fhir-journey: integrate FHIR R4 data into patient journeys (diagnose, treat, keep well).",
    no_args_is_help=True,
    add_completion=False,
)
db_app = typer.Typer(help="Manage the store's schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(subscriptions_app, name="subscriptions")
app.add_typer(feed_app, name="feed")
app.add_typer(audit_app, name="audit")
app.add_typer(people_app, name="people")
app.command("purge")(purge)
log = logging.getLogger("journey")


def _settings(ctx: typer.Context) -> Settings:
    settings: Settings = ctx.obj
    return settings


@app.callback()
def _main(
    ctx: typer.Context,
    config: Annotated[
        Path | None,
        typer.Option("--config", help="TOML config file (else JOURNEY_CONFIG, ./journey.toml)"),
    ] = None,
    database_url: Annotated[
        str | None, typer.Option("--database-url", help="Store URL (else JOURNEY_DATABASE_URL)")
    ] = None,
) -> None:
    settings = load_settings(config, database_url=database_url)
    configure_logging(settings.log_level, settings.log_format)
    ctx.obj = settings


def run_import(
    engine: Engine,
    settings: Settings,
    pack: RulePack,
    source: str,
    paths: list[Path],
    validate: bool = True,
) -> IngestSummary:
    """Import showing its progress (bars at a terminal, plain lines elsewhere): bytes
    read, then records derived."""
    total_bytes = sum(path.stat().st_size for path in discover(paths))
    reading = progress_display(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeElapsedColumn(),
        line=in_bytes,
    )
    mapping = progress_display(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    read_task = reading.add_task(f"{source}: reading", total=total_bytes)
    map_tasks: list[TaskID] = []

    def start_mapping() -> None:
        reading.update(read_task, completed=total_bytes)
        reading.stop()
        map_tasks.append(mapping.add_task(f"{source}: mapping", total=pending_count(engine)))
        mapping.start()

    pipeline = ingest_pipeline(engine, pack, settings, source, WayIn.FILES, validate)
    reading.start()
    try:
        summary = pipeline.run(
            paths,
            on_bytes=lambda n: reading.advance(read_task, n),
            on_derived=lambda n: mapping.advance(map_tasks[0], n),
            before_derive=start_mapping,
        )
    finally:
        reading.stop()
        mapping.stop()
    return summary


def print_summary(summary: IngestSummary) -> None:
    table = Table(title=f"Import into source '{summary.source}' ({summary.files} files)")
    for column in ("resource type", "new", "changed", "unchanged", "quarantined", "warnings"):
        table.add_column(column, justify="left" if column == "resource type" else "right")
    for resource_type in sorted(summary.by_type):
        c = summary.by_type[resource_type]
        table.add_row(
            resource_type,
            *(str(v) for v in (c.new, c.changed, c.unchanged, c.quarantined, c.warnings)),
        )
    table.add_row(
        "[bold]total",
        *(
            f"[bold]{summary.total(a)}"
            for a in ("new", "changed", "unchanged", "quarantined", "warnings")
        ),
    )
    console.print(table)
    console.print(f"{mapped_line(summary.derive)} {summary.seconds:.1f} s.")
    quarantined = summary.total("quarantined")
    if quarantined:
        console.print(
            f"[yellow]{quarantined} quarantined[/] "
            "(kept with the error; `journey quarantine` lists them):"
        )
        for problem in summary.problems:
            console.print(f"  {problem}", markup=False, highlight=False)
        if quarantined > len(summary.problems):
            console.print(f"  ... and {quarantined - len(summary.problems)} more")
    print_mapping_failures(summary.derive.mapping_failures)
    if summary.warnings:
        console.print(f"[yellow]{summary.total('warnings')} warnings[/] (resources kept):")
        for warning in summary.warnings:
            console.print(f"  {warning}", markup=False, highlight=False)
    if summary.orphan_count:
        console.print(
            f"[yellow]{summary.orphan_count} of this import's records are in no journey yet:[/]"
        )
        for orphan in summary.orphans:
            console.print(f"  {orphan}", markup=False, highlight=False)


@app.command("import")
def import_command(
    ctx: typer.Context,
    paths: Annotated[list[Path], typer.Argument(help="Files or folders: .ndjson, .jsonl, .json")],
    source: Annotated[str, typer.Option(help="Name of the source this data comes from")] = "files",
    trusted: Annotated[
        bool,
        typer.Option(
            help="Skip FHIR validation (only resourceType and id are checked): for data "
            "from a system you trust, when speed matters"
        ),
    ] = False,
) -> None:
    """Import FHIR R4 resources, Bundles and NDJSON files or folders of them."""
    if not is_source_name(source):
        raise ConfigError(f"--source {source!r}: a source name is {SOURCE_NAME_RULE}")
    settings = _settings(ctx)
    engine = open_configured_store(settings)
    summary = run_import(engine, settings, store_pack(engine), source, paths, validate=not trusted)
    print_summary(summary)
    if summary.total("quarantined") or summary.derive.mapping_failures:
        raise typer.Exit(EXIT_QUARANTINED)


@app.command()
def serve(
    ctx: typer.Context,
    host: Annotated[
        str | None, typer.Option(help="Address to listen on (default 127.0.0.1)")
    ] = None,
    port: Annotated[int | None, typer.Option(help="Port (default 8000)")] = None,
) -> None:
    """Serve the journey API (OpenAPI docs at /docs)."""
    settings = _settings(ctx)
    _serve(settings, host or settings.host, port or settings.port)


def _serve(settings: Settings, host: str, port: int) -> None:
    import uvicorn
    from uvicorn.config import LOGGING_CONFIG

    from integration.api.app import create_app
    from integration.api.request_log import install_request_log

    if not (settings.api_keys or settings.clients or settings.oauth):
        unkeyed = "No API keys, [[clients]] or OAuth issuer configured: "
        unkeyed += "every request but /healthz gets 401."
        if settings.log_format == "json":
            logging.getLogger("journey.api").warning(unkeyed)
        else:
            stderr.print(f"[yellow]{unkeyed}")
    # Opened here, not in the app's lifespan: a store that cannot be opened (or is at an
    # old schema with JOURNEY_MIGRATE_ON_START off) is then one clear line from main(),
    # where inside uvicorn's startup it was a traceback.
    engine = open_configured_store(settings)
    try:
        api = create_app(settings, engine, server=True)
        install_request_log(api)
        # uvicorn's access log prints query strings, which can carry identifiers: ours does not.
        # With JSON logs uvicorn's own lines go through our handler too (log_config None).
        uvicorn.run(
            api,
            host=host,
            port=port,
            access_log=False,
            log_level=settings.log_level.lower(),
            log_config=None if settings.log_format == "json" else LOGGING_CONFIG,
        )
    finally:
        engine.dispose()


@app.command()
def remap(
    ctx: typer.Context,
    pack_file: Annotated[
        str | None,
        typer.Option(
            "--pack",
            help="Make this rule pack file the store's pack (every process maps with it), "
            "or 'bundled' for the pack shipped with this version; default: the store's pack",
        ),
    ] = None,
) -> None:
    """Re-derive every job record from the raw store with the store's rule pack."""
    settings = _settings(ctx)
    engine = open_configured_store(settings)
    if pack_file is None:
        pack = store_pack(engine)
        flagged = flag_all(engine)
    else:
        chosen = None if pack_file == BUNDLED else Path(pack_file)
        pack, flagged = set_store_pack(engine, chosen)
        console.print(f"The store's rule pack is now {pack.label} ({pack_file}).")
    started = time.perf_counter()
    with progress_display(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    ) as progress:
        task = progress.add_task("remapping", total=flagged)
        summary = update_journey(
            engine, pack, settings.batch_size, lambda n: progress.advance(task, n)
        )
    console.print(
        f"Remapped {summary.resources} resources with pack {pack.label} in "
        f"{time.perf_counter() - started:.1f} s: job records {records_by_job(summary)}."
    )
    print_mapping_failures(summary.mapping_failures)
    if summary.mapping_failures:
        raise typer.Exit(EXIT_QUARANTINED)


quarantine_app = typer.Typer(
    help="What was rejected (intake) or could not be mapped (mapping), where, and why.",
)
app.add_typer(quarantine_app, name="quarantine")


@quarantine_app.callback(invoke_without_command=True)
def quarantine(
    ctx: typer.Context,
    show: Annotated[
        int | None, typer.Option(help="Print one entry whole, with its content")
    ] = None,
    include_resolved: Annotated[
        bool, typer.Option("--all", help="Include entries closed since")
    ] = False,
    stage: Annotated[str | None, typer.Option(help="Only intake or mapping entries")] = None,
    limit: Annotated[int, typer.Option(help="Entries to list")] = 100,
    as_json: AsJson = False,
    as_csv: AsCsv = False,
) -> None:
    """List what was rejected or could not be mapped: source, place, FHIR path, error."""
    if ctx.invoked_subcommand is not None:
        return
    chosen = output_format(as_json, as_csv)
    if show is not None and chosen is OutputFormat.CSV:
        raise typer.BadParameter(
            "--show prints one entry with its content: as text or --json, not --csv",
            param_hint="'--csv'",
        )
    settings = _settings(ctx)
    engine = open_configured_store(settings)
    with engine.connect() as conn:
        if show is not None:
            entry = quarantine_store.entry(conn, show)
            if entry is None:
                stderr.print(f"No quarantine entry {show}.")
                raise typer.Exit(1)
            print_entry(entry, chosen)
            return
        rows = quarantine_store.entries(conn, limit, include_resolved, stage)
    print_entries(rows, chosen)


def _close_entry(ctx: typer.Context, entry_id: int, resolution: str, reason: str) -> None:
    settings = _settings(ctx)
    engine = open_configured_store(settings)
    try:
        with engine.begin() as conn:
            quarantine_store.close_entry(
                conn, entry_id, resolution, reason, f"cli:{getpass.getuser()}", utc_now()
            )
    except quarantine_store.QuarantineEntryNotFound:
        stderr.print(f"No quarantine entry {entry_id}.")
        raise typer.Exit(1) from None
    except ValueError as exc:
        stderr.print(f"[red]error:[/] {exc}", highlight=False)
        raise typer.Exit(1) from None
    console.print(f"Quarantine entry {entry_id} closed as {resolution}.")


@quarantine_app.command("dismiss")
def quarantine_dismiss(
    ctx: typer.Context,
    entry_id: Annotated[int, typer.Argument(help="Entry id (see `journey quarantine`)")],
    reason: Annotated[str, typer.Option(help="Why it will not be fixed (kept with the entry)")],
) -> None:
    """Close an entry that will not be fixed, with the reason."""
    _close_entry(ctx, entry_id, quarantine_store.DISMISSED, reason)


@quarantine_app.command("resolve")
def quarantine_resolve(
    ctx: typer.Context,
    entry_id: Annotated[int, typer.Argument(help="Entry id (see `journey quarantine`)")],
    reason: Annotated[str, typer.Option(help="How it was fixed (kept with the entry)")],
) -> None:
    """Close an entry fixed in a way the store cannot see (a bad file deleted), with how."""
    _close_entry(ctx, entry_id, quarantine_store.RESOLVED, reason)


@app.command()
def status(ctx: typer.Context, as_json: AsJson = False) -> None:
    """What the store holds: people, resources, records per job, open quarantine; and
    whether this install maps with the compiled build or the Python sources."""
    chosen = output_format(as_json)
    settings = _settings(ctx)
    engine = open_configured_store(settings)
    with engine.connect() as conn:
        info = queries.store_status(conn)
    store = engine.url.render_as_string(hide_password=True)
    native = mappings.NATIVE_BUILD
    if chosen is OutputFormat.JSON:
        mapping_code = {"compiled": native.compiled, "detail": native.describe()}
        print_json({"store": store, **info, "mapping_code": mapping_code})
        return
    console.print(f"Store: {escape(store)}")
    for key, value in info.items():
        console.print(f"  {key.replace('_', ' ')}: {escape(str(value))}", highlight=False)
    console.print(f"Mapping code: {escape(native.describe())}", highlight=False)


@app.command()
def show(
    ctx: typer.Context,
    person_id: Annotated[str, typer.Argument(help="Person id (see `journey people`)")],
    include_excluded: Annotated[
        bool,
        typer.Option(
            "--include-excluded",
            help="Also show records out of the journey (entered in error, cancelled, "
            "superseded) with the reason",
        ),
    ] = False,
    limit: Annotated[int, typer.Option(min=1, max=100_000, help="Records to show")] = 200,
    as_json: AsJson = False,
    as_csv: AsCsv = False,
) -> None:
    """Print a person's journey in the terminal, then their episodes; safety flags
    stand out. --json: the person, the records and the episodes; --csv: the records."""
    chosen = output_format(as_json, as_csv)
    settings = _settings(ctx)
    engine = open_configured_store(settings)
    found = read_journey(engine, person_id, limit, include_excluded)
    if settings.audit:
        # The terminal is a way in too: whoever ran `show` read this person's journey.
        record_cli_read(engine, person_id, found.person_id if found else None)
    if found is None:
        stderr.print(f"No person with id {person_id}.")
        raise typer.Exit(1)
    if chosen is OutputFormat.JSON:
        print_journey_json(engine, found, store_pack(engine))
    elif chosen is OutputFormat.CSV:
        print_journey_csv(found)
    else:
        print_journey(found)
        print_episodes(engine, found.person_id, store_pack(engine))


@app.command()
def outcomes(
    ctx: typer.Context,
    from_: Annotated[
        str | None, typer.Option("--from", help="Episodes starting on or after (YYYY-MM-DD)")
    ] = None,
    to: Annotated[str | None, typer.Option(help="Episodes starting before (YYYY-MM-DD)")] = None,
    source: Annotated[str | None, typer.Option(help="Episodes this source took part in")] = None,
    concern: Annotated[
        str | None, typer.Option(help="A concern id (knee_osteoarthritis, icd10cm:I10)")
    ] = None,
    job: Annotated[Job | None, typer.Option(help="Episodes with a contact for this job")] = None,
    as_of: Annotated[
        str | None, typer.Option(help="Statuses and retention as of (YYYY-MM-DD)")
    ] = None,
    retention_months: Annotated[
        int | None, typer.Option(help="Retention window (default: the pack's)", min=1)
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON")] = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="Print the measures as CSV")] = False,
) -> None:
    """Cohort outcome measures over the episodes (PROM change, fulfilment, retention,
    bundle adoption, waits), each with numerator and denominator."""
    chosen = output_format(as_json, as_csv)
    settings = _settings(ctx)
    engine = open_configured_store(settings)
    try:
        query = OutcomeQuery(
            start_from=day_option(from_, "--from"),
            start_to=day_option(to, "--to", end=True),
            source=source,
            concern=concern,
            job=job,
            as_of=day_option(as_of, "--as-of") or utc_now(),
            retention_months=retention_months,
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    pack = store_pack(engine)
    refresh_episodes(engine, pack)
    report = outcome_report(engine, pack, query)
    if chosen is OutputFormat.JSON:
        print_json(report)
    elif chosen is OutputFormat.CSV:
        typer.echo(measures_csv(report["measures"]), nl=False)
    else:
        print_outcomes(report)


def featured_person(engine: Engine) -> str | None:
    """The person with records from the most sources, then the most records: a good first look."""
    with engine.connect() as conn:
        return queries.featured_person(conn)


@app.command()
def demo(
    ctx: typer.Context,
    data_dir: Annotated[Path, typer.Option(help="Where the sample data is written")] = Path(
        "sample-data"
    ),
    people: Annotated[int, typer.Option(help="People in the synthetic population")] = 40,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same data)")] = 7,
    host: Annotated[str | None, typer.Option(help="Address to serve on")] = None,
    port: Annotated[int | None, typer.Option(help="Port to serve on")] = None,
    serve_api: Annotated[
        bool, typer.Option("--serve/--no-serve", help="Serve the API at the end")
    ] = True,
) -> None:
    """Generate the synthetic sample, import both sources, show a journey, serve the API."""
    settings = _settings(ctx)
    if not settings.api_keys:
        settings = settings.model_copy(update={"api_keys": [DEMO_API_KEY]})
    if not settings.push_clients:
        # So the demo can be pushed to as well: a key file, as a deployment would have.
        data_dir.mkdir(parents=True, exist_ok=True)
        key_file = data_dir / "demo-push.key"
        key_file.write_text(DEMO_PUSH_KEY + "\n", encoding="utf-8")
        demo_pusher = PushClientConfig(source=DEMO_PUSH_SOURCE, key_file=str(key_file))
        settings = settings.model_copy(update={"push_clients": [demo_pusher]})
    engine = open_configured_store(settings)
    pack = store_pack(engine)
    console.print(f"Writing a synthetic population of {people} people to {data_dir}/ (seed {seed})")
    for source, path in write_sample(data_dir, seed=seed, people=people).items():
        print_summary(run_import(engine, settings, pack, source, [path]))
    person_id = featured_person(engine)
    if person_id is None:
        stderr.print("The sample produced no journey; nothing to show.")
        raise typer.Exit(1)
    found = read_journey(engine, person_id)
    if found is not None:
        print_journey(found)
    print_episodes(engine, person_id, pack)
    host = host or settings.host
    port = port or settings.port
    base = f"http://{host}:{port}"
    key = settings.api_keys[0]
    console.print(f"\nJourney: {base}/people/{person_id}/journey", highlight=False, soft_wrap=True)
    console.print(f"API key: {key}  (send as 'Authorization: Bearer {key}')", highlight=False)
    console.print(
        f"Try:     curl -H 'Authorization: Bearer {key}' {base}/people/{person_id}/journey",
        highlight=False,
        soft_wrap=True,
    )
    console.print(
        f"Also:    {base}/people/{person_id}/episodes, {base}/metrics/outcomes, {base}/feed",
        highlight=False,
        soft_wrap=True,
    )
    console.print(
        f"Look:    {base}/ui/people/{person_id}  (sign in with the key)",
        highlight=False,
        soft_wrap=True,
    )
    console.print(
        f"Docs:    {base}/docs  (Authorize with the key, then try the endpoints)", highlight=False
    )
    if settings.push_clients and settings.push_clients[0].source == DEMO_PUSH_SOURCE:
        console.print(
            f"Push:    FHIR R4 base {base}/fhir, push key {DEMO_PUSH_KEY} "
            f"(stored as source {DEMO_PUSH_SOURCE})",
            highlight=False,
            soft_wrap=True,
        )
    if serve_api:
        engine.dispose()
        _serve(settings, host, port)


@app.command()
def sync(
    ctx: typer.Context,
    source: Annotated[str | None, typer.Option(help="Only this configured source")] = None,
    full: Annotated[bool, typer.Option(help="Ignore checkpoints and pull everything")] = False,
) -> None:
    """Pull configured FHIR sources: the first time everything, then what changed.

    Exit code 2 when a source or resource type failed (see `journey sources`)."""
    settings = _settings(ctx)
    chosen = pick_sources(settings.sources, source, settings.config_file)
    engine = open_configured_store(settings)
    pack = store_pack(engine)
    failed = False
    owner = default_owner("journey-sync")
    for configured in chosen:
        with progress_display(
            TextColumn("[bold]{task.description}"),
            TextColumn("{task.fields[pages]} pages"),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
        ) as progress:
            listener = SyncListener(
                on_page=page_progress(progress),
                on_step=export_progress(progress, configured.name),
            )
            try:
                summary = asyncio.run(
                    sync_leased(
                        engine,
                        settings,
                        configured,
                        owner,
                        partial(
                            sync_source, engine, pack, settings, configured, full, None, listener
                        ),
                    )
                )
            except SyncAlreadyRunning as exc:
                stderr.print(f"{configured.name}: not synced: {exc}", highlight=False)
                failed = True
                continue
        print_sync_summary(summary)
        failed = failed or summary.failed
    if failed:
        raise typer.Exit(EXIT_SYNC_FAILED)


@app.command()
def sources(ctx: typer.Context, as_json: AsJson = False, as_csv: AsCsv = False) -> None:
    """Configured sources with each type's last sync, checkpoint, counts and last error."""
    chosen = output_format(as_json, as_csv)
    settings = _settings(ctx)
    configured = settings.sources
    engine = open_configured_store(settings)
    with engine.connect() as conn:
        by_source = states_by_source(conn)
        exports = exports_in_progress(conn)
        units = all_units(conn)
        rosters = roster_counts(conn)
    view = sources_view(configured, by_source, exports, units, rosters)
    if chosen is OutputFormat.JSON:
        print_json(view)
    elif chosen is OutputFormat.CSV:
        print_csv(SOURCE_COLUMNS, source_rows(view))
    elif not configured:
        console.print(f"No [[sources]] in {settings.config_file or 'any config file'}.")
    else:
        print_sources(view, units)


@app.command()
def worker(
    ctx: typer.Context,
    once: Annotated[
        bool, typer.Option(help="Run the units due now, then exit (for cron, or a first fill)")
    ] = False,
) -> None:
    """Run sync units from the store, sharing them with any other `journey worker`, and
    deliver the feed to webhook subscriptions.

    Each source's resource types (or its Bulk Data export) are units that one
    worker at a time holds a lease on; each webhook endpoint is a queue one worker
    at a time delivers. Start as many workers as wanted, on as many machines,
    against one PostgreSQL. Stops cleanly on Ctrl-C or SIGTERM."""
    settings = _settings(ctx)
    configured = settings.sources
    say, warn = _voice(settings, "journey.worker")
    engine = open_configured_store(settings)
    apply_config(engine, settings.subscriptions, settings.config_file)
    sync_worker = SyncWorker(
        engine,
        store_pack(engine),
        settings,
        configured,
        on_unit=lambda unit, summary, error: say(unit_line(unit, summary, error)),
        on_note=warn,
    )
    deliverer = WebhookDeliverer(engine, settings, sync_worker.owner, on_note=warn)
    say(
        f"worker {sync_worker.owner}: {len(configured)} source(s), lease "
        f"{settings.worker_lease_seconds} s, every unit each {settings.sync_interval_seconds} s; "
        "delivering webhooks"
    )
    stats, delivery = asyncio.run(_run_worker(sync_worker, deliverer, once))
    say(
        f"worker {sync_worker.owner} stopped: {stats.units_run} unit(s) run, "
        f"{stats.units_failed} failed, {stats.leases_lost} lease(s) lost, "
        f"{stats.store_errors} store error(s); {delivery.delivered} webhook(s) delivered, "
        f"{delivery.failed} failed, {delivery.dead_lettered} dead-lettered"
    )
    if once and stats.units_failed:
        raise typer.Exit(EXIT_SYNC_FAILED)


def _voice(settings: Settings, logger: str) -> tuple[Callable[[str], None], Callable[[str], None]]:
    """Where a long-running command's lines go (news, then warnings): the terminal, or
    with JSON logs the log, so that a collector reading the stream finds only JSON."""
    if settings.log_format == "json":
        named = logging.getLogger(logger)
        return named.info, named.warning
    return (
        lambda message: console.print(message, highlight=False),
        lambda message: stderr.print(message, highlight=False),
    )


async def _run_worker(
    sync_worker: SyncWorker, deliverer: WebhookDeliverer, once: bool
) -> tuple[WorkerStats, DeliveryStats]:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    delivering = asyncio.create_task(deliverer.run(stop))
    # With --once the syncs decide when to stop; webhooks due meanwhile are delivered.
    stats = await sync_worker.run(stop, once=once)
    stop.set()
    return stats, await delivering


@db_app.command("upgrade")
def db_upgrade(ctx: typer.Context) -> None:
    """Run the store's migrations up to the newest (safe to run again)."""
    settings = _settings(ctx)
    engine = create_store_engine(settings.database_url)
    migrate(engine)
    console.print(f"Store at {engine.url.render_as_string(hide_password=True)} is up to date.")


def main() -> None:
    """Entry point: turn the project's errors into one clear line and exit code 1."""
    try:
        app()
    except JourneyError as exc:
        # Messages name sources, files, paths and ids; escaped, since a path or a server's
        # text may hold brackets Rich would read as markup; never wrapped, one line.
        stderr.print(f"[red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        raise SystemExit(1) from exc
    except SQLAlchemyError as exc:
        # Never the statement or the driver's message: both can quote patient data.
        stderr.print(f"[red]store error:[/] {describe_store_error(exc)}", highlight=False)
        raise SystemExit(1) from None
