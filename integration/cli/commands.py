"""The `journey` command line: import, serve, sync, worker, sources, remap, quarantine, status,
show, demo, db upgrade; `subscriptions` and `feed` live in `integration.cli.subscriptions`.
What sync and sources print lives in `integration.cli.sync_view`.

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
from typing import Annotated, TypeVar

import orjson
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

from connectors.files import discover
from fhir_journey.errors import JourneyError
from integration.cli.audit import audit_app, record_cli_read
from integration.cli.console import console, day_option, stderr
from integration.cli.demo_population import write_sample
from integration.cli.episodes_view import print_episodes, print_outcomes
from integration.cli.progress import in_bytes, progress_display
from integration.cli.subscriptions import feed_app, subscriptions_app
from integration.cli.sync_view import (
    export_progress,
    page_progress,
    print_sources,
    print_sync_summary,
    unit_line,
)
from integration.clock import utc_now
from integration.config import Settings, load_settings
from integration.errors import ConfigError
from integration.ingest.pipeline import IngestSummary, resource_label
from integration.ingest.policy import WayIn, ingest_pipeline
from integration.journey import review
from integration.journey.episodes import refresh_episodes
from integration.journey.matching import Outcome
from integration.journey.outcomes import OutcomeQuery, measures_csv, outcome_report
from integration.journey.rule_packs import set_store_pack, store_pack
from integration.journey.update import flag_all, pending_count, update_journey
from integration.push_clients import PushClientConfig
from integration.source_names import SOURCE_NAME_RULE, is_source_name
from integration.sources import pick_sources
from integration.store import matches as matches_store
from integration.store import quarantine as quarantine_store
from integration.store import queries
from integration.store.bulk_state import exports_in_progress
from integration.store.engine import create_store_engine, migrate, open_configured_store
from integration.store.errors import describe_store_error
from integration.store.leases import SyncAlreadyRunning, all_units
from integration.store.rule_pack_state import BUNDLED
from integration.store.sync_state import states_by_source
from integration.sync.context import SyncListener
from integration.sync.leased import default_owner, sync_leased
from integration.sync.runners import sync_source
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
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    logging.getLogger("alembic").setLevel(logging.WARNING)
    # SQL parameters carry resource content: never log them, whatever the level.
    logging.getLogger("sqlalchemy").setLevel(logging.WARNING)
    # httpx logs every URL with its query, which can carry identifiers (patient=...).
    logging.getLogger("httpx").setLevel(logging.WARNING)
    ctx.obj = settings


def run_import(
    engine: Engine,
    settings: Settings,
    pack: RulePack,
    source: str,
    paths: list[Path],
    validate: bool = True,
) -> IngestSummary:
    """Import with a live progress display: bytes read, then records derived."""
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
    jobs = (
        ", ".join(f"{job} {n}" for job, n in sorted(summary.derive.records_by_job.items()))
        or "none"
    )
    if summary.derive.resources:
        console.print(
            f"Mapped {summary.derive.resources} resources: job records {jobs}; "
            f"{summary.derive.people_linked} patients linked to people. {summary.seconds:.1f} s."
        )
    else:
        console.print(f"Nothing new to map. {summary.seconds:.1f} s.")
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


def print_mapping_failures(count: int) -> None:
    if count:
        console.print(
            f"[yellow]{count} resources could not be mapped[/]: isolated, everything else "
            "mapped (`journey quarantine --stage mapping` lists them)"
        )


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

    from integration.api.app import create_app
    from integration.api.request_log import install_request_log

    if not (settings.api_keys or settings.clients or settings.oauth):
        stderr.print(
            "[yellow]No API keys, [[clients]] or OAuth issuer configured: "
            "every request but /healthz gets 401."
        )
    # Opened here, not in the app's lifespan: a store that cannot be opened (or is at an
    # old schema with JOURNEY_MIGRATE_ON_START off) is then one clear line from main(),
    # where inside uvicorn's startup it was a traceback.
    engine = open_configured_store(settings)
    try:
        api = create_app(settings, engine)
        install_request_log(api)
        # uvicorn's access log prints query strings, which can carry identifiers: ours does not.
        uvicorn.run(
            api, host=host, port=port, access_log=False, log_level=settings.log_level.lower()
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
    jobs = ", ".join(f"{job} {n}" for job, n in sorted(summary.records_by_job.items())) or "none"
    console.print(
        f"Remapped {summary.resources} resources with pack {pack.label} in "
        f"{time.perf_counter() - started:.1f} s: job records {jobs}."
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
) -> None:
    """List what was rejected or could not be mapped: source, place, FHIR path, error."""
    if ctx.invoked_subcommand is not None:
        return
    settings = _settings(ctx)
    engine = open_configured_store(settings)
    with engine.connect() as conn:
        if show is not None:
            entry = quarantine_store.entry(conn, show)
            if entry is None:
                stderr.print(f"No quarantine entry {show}.")
                raise typer.Exit(1)
            for key, value in entry.items():
                if key != "content":
                    console.print(f"[bold]{key}[/]: {value}", highlight=False)
            console.print("[bold]content[/]:")
            console.print(entry["content"] or "", markup=False, highlight=False)
            return
        rows = quarantine_store.entries(conn, limit, include_resolved, stage)
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
            ", ".join(part for part in (row["origin"], row["location"]) if part),
            resource_label(row["resource_type"], row["resource_id"]),
            row["fhir_path"] or "",
            row["error"],
            f"{row['resolution']} {row['resolved_at']}" if row["resolved_at"] else "",
        )
    console.print(table)
    console.print(
        "Fix the input and import it again, or remap once a mapping failure's cause is fixed: "
        "the entry closes as fixed. `--show ID` prints one; `journey quarantine dismiss ID "
        "--reason ...` closes one that will not be fixed."
    )


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


people_app = typer.Typer(help="People across sources: who may be one person, and why.")
app.add_typer(people_app, name="people")


@people_app.command("review")
def people_review(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option(help="How many pairs to show")] = 50,
) -> None:
    """Possible matches waiting for a reviewer: both Patients side by side, with why
    they were not linked automatically and how each field compared."""
    engine = open_configured_store(_settings(ctx))
    with engine.connect() as conn:
        waiting = matches_store.review_queue(conn, limit)
    if not waiting:
        console.print("No possible matches wait for review.")
        return
    table = Table(title=f"{len(waiting)} possible matches (oldest first)")
    for column in ("", "source", "patient", "person", "name", "birth date"):
        table.add_column(column)
    table.add_column("why", overflow="fold")
    for number, pair in enumerate(waiting, 1):
        compared = ", ".join(f"{k} {v}" for k, v in pair["fields"].items())
        for label, side in (("a", pair["a"]), ("b", pair["b"])):
            table.add_row(
                f"{number}{label}",
                side["source"],
                side["patient_id"],
                (side["person_id"] or "")[:8],
                side["name"] or "",
                side["birth_date"] or "",
                f"{pair['reason']} ({compared})" if label == "a" else "",
                end_section=label == "b",
            )
    console.print(table)


_T = TypeVar("_T")
PatientArg = Annotated[str, typer.Argument(help="A source Patient as SOURCE/PATIENT_ID")]
Reason = Annotated[str, typer.Option(help="Why: kept in the history", min=1)]


def _patient_key(text: str) -> tuple[str, str]:
    source, sep, patient_id = text.rpartition("/")
    if not sep or not source or not patient_id:
        raise typer.BadParameter(f"{text!r} is not SOURCE/PATIENT_ID")
    return source, patient_id


def _reviewer_decision(ctx: typer.Context, run: Callable[..., _T]) -> _T:
    """Run a reviewer's decision under the derive lock with the store's identity rules;
    an unknown Patient or person, or a merged person, is one clear line and exit 1."""
    engine = open_configured_store(_settings(ctx))
    user = f"cli:{getpass.getuser()}"
    try:
        return review.under_derive_lock(
            engine, lambda conn, rules: run(conn, rules, user, utc_now())
        )
    except (review.UnknownPatient, review.UnknownPerson, review.PersonMerged, ValueError) as exc:
        stderr.print(f"error: {exc}", highlight=False)
        raise typer.Exit(1) from None


@people_app.command("link")
def people_link(ctx: typer.Context, a: PatientArg, b: PatientArg, reason: Reason) -> None:
    """Two source Patients are one person (a reviewer's decision, kept on re-matching)."""
    first, second = _patient_key(a), _patient_key(b)
    linked = _reviewer_decision(
        ctx,
        lambda conn, rules, user, now: review.decide_pair(
            conn, first, second, Outcome.MATCH, reason, user, now, rules
        ),
    )
    console.print(f"Linked: both are person {linked[first]}", highlight=False)


@people_app.command("keep-apart")
def people_keep_apart(ctx: typer.Context, a: PatientArg, b: PatientArg, reason: Reason) -> None:
    """Two source Patients are two people: never linked automatically again."""
    first, second = _patient_key(a), _patient_key(b)
    linked = _reviewer_decision(
        ctx,
        lambda conn, rules, user, now: review.decide_pair(
            conn, first, second, Outcome.NO_MATCH, reason, user, now, rules
        ),
    )
    console.print(f"Kept apart: {a} is person {linked[first]}, {b} is person {linked[second]}")


@people_app.command("merge")
def people_merge(
    ctx: typer.Context,
    person_id: Annotated[str, typer.Argument(help="The person to merge")],
    into: Annotated[str, typer.Argument(help="The person to merge it into")],
    reason: Reason,
) -> None:
    """Two people are one."""
    survivor = _reviewer_decision(
        ctx,
        lambda conn, rules, user, now: review.merge_people(
            conn, person_id, into, reason, user, now, rules
        ),
    )
    console.print(f"Merged: person {survivor}", highlight=False)


@people_app.command("split")
def people_split(ctx: typer.Context, patient: PatientArg, reason: Reason) -> None:
    """Take a source Patient out of its person."""
    key = _patient_key(patient)
    person = _reviewer_decision(
        ctx,
        lambda conn, rules, user, now: review.split_patient(conn, key, reason, user, now, rules),
    )
    console.print(f"Split: {patient} is person {person}", highlight=False)


@people_app.command("history")
def people_history(
    ctx: typer.Context, person_id: Annotated[str, typer.Argument(help="A person id")]
) -> None:
    """Every decision on a pair with one of this person's Patients, oldest first."""
    engine = open_configured_store(_settings(ctx))
    try:
        with engine.connect() as conn:
            resolved, items = review.history_of_person(conn, person_id)
    except review.UnknownPerson as exc:
        stderr.print(f"error: {exc}", highlight=False)
        raise typer.Exit(1) from None
    table = Table(title=f"Link history of person {resolved}")
    for column in ("when", "a", "b", "outcome", "by", "why"):
        table.add_column(column, overflow="fold")
    for item in items:
        table.add_row(
            item["decided_at"],
            f"{item['a']['source']}/{item['a']['patient_id']}",
            f"{item['b']['source']}/{item['b']['patient_id']}",
            item["outcome"],
            item["decided_by"],
            item["reason"],
        )
    console.print(table)


@app.command()
def status(ctx: typer.Context) -> None:
    """What the store holds: people, resources, records per job, open quarantine."""
    settings = _settings(ctx)
    engine = open_configured_store(settings)
    with engine.connect() as conn:
        info = queries.store_status(conn)
    console.print(f"Store: {engine.url.render_as_string(hide_password=True)}")
    for key, value in info.items():
        console.print(f"  {key.replace('_', ' ')}: {value}", highlight=False)


@app.command()
def show(
    ctx: typer.Context,
    person_id: Annotated[str, typer.Argument(help="Person id (see GET /people)")],
    include_excluded: Annotated[
        bool,
        typer.Option(
            "--include-excluded",
            help="Also show records out of the journey (entered in error, cancelled, "
            "superseded) with the reason",
        ),
    ] = False,
) -> None:
    """Print a person's journey in the terminal, then their episodes; safety flags
    stand out."""
    settings = _settings(ctx)
    engine = open_configured_store(settings)
    resolved = print_journey(engine, person_id, include_excluded=include_excluded)
    if settings.audit:
        # The terminal is a way in too: whoever ran `show` read this person's journey.
        record_cli_read(engine, person_id, resolved)
    if resolved is None:
        stderr.print(f"No person with id {person_id}.")
        raise typer.Exit(1)
    print_episodes(engine, resolved, store_pack(engine))


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
    if as_json:
        typer.echo(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())
    elif as_csv:
        typer.echo(measures_csv(report["measures"]), nl=False)
    else:
        print_outcomes(report)


def print_journey(
    engine: Engine, person_id: str, limit: int = 200, include_excluded: bool = False
) -> str | None:
    """Print the person's journey; returns the person's id (a merged one's survivor),
    None when there is no such person."""
    with engine.connect() as conn:
        resolved = queries.resolve_person(conn, person_id)
        person = queries.get_person(conn, resolved) if resolved else None
        if person is None or resolved is None:
            return None
        where = queries.JourneyFilter(include_excluded=include_excluded)
        records = queries.journey(conn, resolved, limit, where=where)
    sources = ", ".join(f"{s['source']} Patient/{s['patient_id']}" for s in person["sources"])
    table = Table(title=f"Journey of {person['name'] or 'person'} ({resolved})\n{sources}")
    table.add_column("when", no_wrap=True)
    table.add_column("job", no_wrap=True)
    table.add_column("what", ratio=1)
    table.add_column("source", no_wrap=True)
    colours = {"diagnose": "cyan", "treat": "magenta", "keep_well": "green", "unclassified": "red"}
    for record in records:
        when = (record["occurred_start"] or "-")[:10]
        job = record["job"]
        what = escape(record["title"])
        if record["score"] is not None:
            band = f", {record['band']}" if record["band"] else ""
            what += f" (score {record['score']}{band})"
        if record["fulfilment_score"] is not None:
            what += f" (fulfilment {record['fulfilment_score']}/5)"
        flags = record["flags"]
        if "self_harm_risk" in flags:
            what = f"[bold white on red] SELF-HARM RISK [/] {what}"
        others = [flag for flag in flags if flag != "self_harm_risk"]
        if others:
            what += f" [yellow]{escape('[' + ', '.join(others) + ']')}[/]"
        if record["excluded"]:
            what = f"[dim]excluded: {what} ({escape(record['reason']['text'])})[/]"
        elif record["event_of"]:
            what = f"[dim]the same event as another source's record: {what}[/]"
        sources = ", ".join([record["source"]["source"], *(j["source"] for j in record["joined"])])
        table.add_row(when, f"[{colours.get(job, 'white')}]{job}[/]", what, sources)
    console.print(table)
    return resolved


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
    print_journey(engine, person_id)
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
def sources(ctx: typer.Context) -> None:
    """Configured sources with each type's last sync, checkpoint, counts and last error."""
    settings = _settings(ctx)
    configured = settings.sources
    engine = open_configured_store(settings)
    with engine.connect() as conn:
        by_source = states_by_source(conn)
        exports = exports_in_progress(conn)
        units = all_units(conn)
    if not configured:
        console.print(f"No [[sources]] in {settings.config_file or 'any config file'}.")
        return
    print_sources(configured, by_source, exports, units)


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
    engine = open_configured_store(settings)
    apply_config(engine, settings.subscriptions, settings.config_file)
    sync_worker = SyncWorker(
        engine,
        store_pack(engine),
        settings,
        configured,
        on_unit=lambda unit, summary, error: console.print(
            unit_line(unit, summary, error), highlight=False
        ),
        on_note=lambda message: stderr.print(message, highlight=False),
    )
    deliverer = WebhookDeliverer(
        engine,
        settings,
        sync_worker.owner,
        on_note=lambda message: stderr.print(message, highlight=False),
    )
    console.print(
        f"worker {sync_worker.owner}: {len(configured)} source(s), lease "
        f"{settings.worker_lease_seconds} s, every unit each {settings.sync_interval_seconds} s; "
        "delivering webhooks",
        highlight=False,
    )
    stats, delivery = asyncio.run(_run_worker(sync_worker, deliverer, once))
    console.print(
        f"worker {sync_worker.owner} stopped: {stats.units_run} unit(s) run, "
        f"{stats.units_failed} failed, {stats.leases_lost} lease(s) lost, "
        f"{stats.store_errors} store error(s); {delivery.delivered} webhook(s) delivered, "
        f"{delivery.failed} failed, {delivery.dead_lettered} dead-lettered",
        highlight=False,
    )
    if once and stats.units_failed:
        raise typer.Exit(EXIT_SYNC_FAILED)


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
