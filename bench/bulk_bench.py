"""Bulk import benchmark: population-scale NDJSON through the Bulk Data import path.

Generates an NDJSON set of Patients, Encounters and QuestionnaireResponses
(the synthetic population's proportions) and prints, in one run:

  1. bare orjson parse rate                    (the JSON floor)
  2. bare fhir.resources validation rate, one process (the validation floor)
  3. our import with full validation, worker processes on every core:
     mapping after the storing (to the raw store, and end to end with
     mapping), and as `journey import` does it, mapping while the workers
     validate the next batches (end to end); peak RSS
  4. our import with validation off (a trusted source): the same figures
  5. the raw store's floor: bare sqlite3 writing the same rows, built
     beforehand, into a fresh store (what any import must pay to store them)
  6. on PostgreSQL, the import with validation off: with COPY (what a trusted
     source's files use), the same with intake in this process (no worker
     processes), and row by row (the path before COPY, for comparison),
     each into a fresh database the bench creates and drops (--postgres URL of
     the server's admin database; --no-postgres skips it)

Each import runs in a fresh child process on a fresh SQLite store, reading
the file with the same streaming NDJSON reader `journey sync` uses for
Bulk Data files; peak RSS is the child's (its worker processes are smaller),
and "cores" is the CPU time of the import and its workers over its wall time
(on PostgreSQL the server's own CPU time is not in it).

The baselines are what a bare loop gets at its best: orjson parses each line
and drops it; validation runs over a sample parsed beforehand and frozen
(`gc.freeze`), because a held sample of 50,000 dicts otherwise makes the
garbage collector walk it again and again, slowing the baseline (and
flattering our ratio) by about a third.
Targets (issue 5): import with full validation >= 1.4x the one-process bare
validation rate; with validation off >= 20% of bare orjson; RSS flat with size.
Issue 21: full validation end to end >= 1.0x bare validation; on PostgreSQL,
validation off (COPY) >= 20% of bare orjson.

    scripts/bench-bulk --resources 500000
"""

from __future__ import annotations

import argparse
import gc
import itertools
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).parent))
from import_bench import write_population
from scratch_postgres import fresh_postgres

from integration.config import Settings
from integration.ingest.validation import validate_resource

TYPES = {"Patient", "Encounter", "QuestionnaireResponse"}


def write_set(path: Path, target: int) -> dict[str, int]:
    """The synthetic population, only the three journey types, `target` lines."""
    scratch = path.with_suffix(".all")
    mix: dict[str, int] = {}
    written = 0
    scale = target
    while written < target:
        # The population's mix has other types too: generate enough to keep `target`.
        write_population(scratch, int(scale * 1.6) + 100)
        written, mix = 0, {}
        with scratch.open("rb") as source, path.open("wb") as out:
            for line in source:
                kind = orjson.loads(line)["resourceType"]
                if kind in TYPES and written < target:
                    out.write(line)
                    mix[kind] = mix.get(kind, 0) + 1
                    written += 1
        scale *= 2
    scratch.unlink()
    return mix


def peak_rss_mb() -> float:
    """This process's peak RSS. Not getrusage: on Linux its ru_maxrss survives exec,
    so a child would report the parent's peak (the generator's) as its own."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_seconds() -> float:
    """This process's CPU time and its finished children's (the worker processes)."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def child_import(
    data: Path, url: str, validate: bool, processes: int, copy: bool, rounds: bool
) -> None:
    """Runs in the child process: import, print phase times as JSON."""
    from integration.ingest.pipeline import IngestPipeline
    from integration.store.engine import open_store
    from mappings.rulepack import load_rule_pack

    engine = open_store(url)
    marks: dict[str, float] = {"start": time.perf_counter()}
    importer = IngestPipeline(
        engine,
        load_rule_pack(),
        "bench-bulk",
        16 << 20,
        # What `journey import` and a Bulk sync use unless configured otherwise.
        batch_size=Settings.model_fields["batch_size"].default,
        store_batch_size=Settings.model_fields["import_batch_size"].default,
        validate=validate,
        processes=processes,
        bulk_copy=copy,
    )
    assert importer.by_copy is (copy and not validate and url.startswith("postgresql"))
    # Off: the storing alone is timed to the raw store (issue 5's figure), as before.
    importer.derives_while_storing = importer.derives_while_storing and rounds
    rss_mb: dict[str, float] = {}
    cpu_at_start = cpu_seconds()
    cpu: dict[str, float] = {}

    def stored() -> None:
        marks["stored"] = time.perf_counter()
        rss_mb["stored"] = peak_rss_mb()
        cpu["stored"] = cpu_seconds() - cpu_at_start

    summary = importer.run([data], before_derive=stored)
    marks["mapped"] = time.perf_counter()
    print(
        orjson.dumps(
            {
                "stored_s": marks["stored"] - marks["start"],
                "total_s": marks["mapped"] - marks["start"],
                "quarantined": summary.total("quarantined"),
                "rss_stored_mb": rss_mb["stored"],
                "cores_stored": cpu["stored"] / (marks["stored"] - marks["start"]),
                "rss_mb": peak_rss_mb(),
            }
        ).decode()
    )


def run_child(
    data: Path, url: str, validate: bool, processes: int, copy: bool = True, rounds: bool = True
) -> dict[str, float]:
    done = subprocess.run(
        [
            sys.executable,
            __file__,
            "--child",
            str(data),
            url,
            "1" if validate else "0",
            str(processes),
            "1" if copy else "0",
            "1" if rounds else "0",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, float] = orjson.loads(done.stdout.strip().splitlines()[-1])
    return result


def store_floor(data: Path, folder: Path, batch: int) -> float:
    """Rows per second SQLite alone takes: each resource's raw row and current row,
    built beforehand (not timed) by the store's own code, then written with bare
    sqlite3 executemany, the store's own statements, in transactions of `batch`
    into a fresh store (same schema, indexes and pragmas)."""
    import sqlite3

    from integration.ingest.intake import intake
    from integration.store.engine import open_store
    from integration.store.raw import (
        IncomingResource,
        current_row,
        current_upsert_statement,
        raw_insert_statement,
        raw_row,
    )
    from integration.store.upsert import driver_sql

    database = folder / "floor.db"
    engine = open_store(f"sqlite:///{database}")
    timed = 0.0
    count = 0
    with engine.connect() as compiler, data.open("rb") as handle:
        raw_statement = raw_insert_statement(compiler)
        current_statement = current_upsert_statement(compiler)
        conn = compiler.connection.dbapi_connection
        assert isinstance(conn, sqlite3.Connection)
        conn.isolation_level = None
        while lines := list(itertools.islice(handle, batch)):
            items = []
            for number, line in enumerate(lines, count + 1):
                examined = intake(orjson.loads(line), None, validate=False)
                item = IncomingResource(
                    "floor",
                    examined.resource_type,
                    examined.resource_id,
                    examined.version_key,
                    examined.last_updated,
                    examined.subject_id,
                    str(data),
                    f"line {number}",
                    line.strip().decode(),
                )
                items.append((item.raw_key, item))
            raw = driver_sql(
                compiler,
                raw_statement,
                [raw_row(key, item, "2026-01-01T00:00:00Z") for key, item in items],
            )
            current = driver_sql(
                compiler, current_statement, [current_row(key, item) for key, item in items]
            )
            count += len(lines)
            started = time.perf_counter()
            conn.execute("BEGIN")
            conn.executemany(*raw)
            conn.executemany(*current)
            conn.execute("COMMIT")
            timed += time.perf_counter() - started
    engine.dispose()
    return count / timed


def parse_rate_of(data: Path, count: int) -> float:
    started = time.perf_counter()
    with data.open("rb") as handle:
        for line in handle:
            orjson.loads(line)
    return count / (time.perf_counter() - started)


def validation_rate(sample: list[dict[str, object]]) -> float:
    started = time.perf_counter()
    for item in sample:
        validate_resource(item)
    return len(sample) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--resources", type=int, default=500_000)
    parser.add_argument(
        "--validation-sample",
        type=int,
        default=50_000,
        help="resources the bare validation floor is timed on (it is the slow one)",
    )
    parser.add_argument("--processes", type=int, default=os.cpu_count() or 1)
    parser.add_argument(
        "--postgres",
        default=os.environ.get(
            "JOURNEY_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
        ),
        help="admin URL of the PostgreSQL server to import into (a fresh database each)",
    )
    parser.add_argument("--no-postgres", action="store_true", help="SQLite figures only")
    parser.add_argument("--child", nargs=6, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        data, url, validate, processes, copy, rounds = args.child
        child_import(Path(data), url, validate == "1", int(processes), copy == "1", rounds == "1")
        return

    with tempfile.TemporaryDirectory(prefix="journey-bulk-bench-") as name:
        folder = Path(name)
        data = folder / "export.ndjson"
        print(f"generating {args.resources:,} resources ...", flush=True)
        mix = write_set(data, args.resources)
        size_mb = data.stat().st_size / 1e6
        print(
            f"{sum(mix.values()):,} resources, {size_mb:,.0f} MB NDJSON: "
            + ", ".join(f"{k} {v:,}" for k, v in sorted(mix.items())),
            flush=True,
        )
        count = sum(mix.values())

        parse_before = parse_rate_of(data, count)

        sample: list[dict[str, object]] = []
        with data.open("rb") as handle:
            for line in itertools.islice(handle, args.validation_sample):
                sample.append(orjson.loads(line))
        for item in sample[:100]:
            validate_resource(item)  # the models' first use builds their validators
        gc.freeze()
        # This machine's speed drifts by a third over minutes: each floor is timed
        # before and after the import it is compared with, and the mean is used.
        before = validation_rate(sample)
        print("importing with full validation, mapping after the storing ...", flush=True)
        full = run_child(
            data, f"sqlite:///{folder / 'full.db'}", True, args.processes, rounds=False
        )
        print("importing with full validation, mapping while storing ...", flush=True)
        rounds = run_child(data, f"sqlite:///{folder / 'rounds.db'}", True, args.processes)
        after = validation_rate(sample)
        validate_rate = (before + after) / 2
        del sample
        gc.unfreeze()
        print("importing with validation off (trusted) ...", flush=True)
        trusted = run_child(data, f"sqlite:///{folder / 'trusted.db'}", False, args.processes)
        parse_after = parse_rate_of(data, count)
        postgres: dict[str, dict[str, float]] = {}
        if not args.no_postgres:
            # Both PostgreSQL imports between two timings of the orjson floor, as above.
            for label, copy, processes in (
                ("copy", True, args.processes),
                # On a busy 2-core machine the worker processes cost more than they
                # save once COPY made the store cheap: shown beside it.
                ("copy, intake in-process", True, 0),
                ("row by row", False, args.processes),
            ):
                print(f"importing with validation off into PostgreSQL, {label} ...", flush=True)
                with fresh_postgres(args.postgres) as url:
                    postgres[label] = run_child(data, url, False, processes, copy)
            parse_pg_after = parse_rate_of(data, count)
            parse_pg_rate = (parse_after + parse_pg_after) / 2
        parse_rate = (parse_before + parse_after) / 2
        print("timing the raw store's floor (bare sqlite3) ...", flush=True)
        floor = store_floor(data, folder, Settings.model_fields["import_batch_size"].default)

    print(f"\n{'':<52} {'resources/s':>12} {'peak RSS':>9} {'cores':>6}")
    print(
        f"{'bare orjson parse (one process)':<52} {parse_rate:>12,.0f}"
        f"   (before the imports {parse_before:,.0f}, after {parse_after:,.0f})"
    )
    print(
        f"{'bare fhir.resources validation (one process)':<52} {validate_rate:>12,.0f}"
        f"   (before the import {before:,.0f}, after {after:,.0f})"
    )
    for label, result in (
        (f"import, full validation, {args.processes} worker processes", full),
        (f"import, validation off (trusted), {args.processes} worker processes", trusted),
    ):
        assert result["quarantined"] == 0
        print(
            f"{label + ': to the raw store':<52} {count / result['stored_s']:>12,.0f} "
            f"{result['rss_mb']:>7.0f}MB {result['cores_stored']:>6.2f}"
        )
        print(f"{'   ... and mapped into journeys':<52} {count / result['total_s']:>12,.0f}")
        if result is full:
            print(
                f"{'   ... mapping while storing (journey import): end to end':<52} "
                f"{count / rounds['total_s']:>12,.0f} {rounds['rss_mb']:>7.0f}MB"
            )
    print(f"{'raw store floor: bare sqlite3, rows built beforehand':<52} {floor:>12,.0f}")
    if postgres:
        print(
            f"\nPostgreSQL, validation off (trusted), {args.processes} worker processes "
            "unless in-process; "
            f"bare orjson {parse_pg_rate:,.0f}/s around these imports "
            f"(before {parse_after:,.0f}, after {parse_pg_after:,.0f})"
        )
        for label, result in postgres.items():
            assert result["quarantined"] == 0
            print(
                f"{'PostgreSQL ' + label + ': to the raw store':<52} "
                f"{count / result['stored_s']:>12,.0f} "
                f"{result['rss_mb']:>7.0f}MB {result['cores_stored']:>6.2f}"
            )
            print(f"{'   ... and mapped into journeys':<52} {count / result['total_s']:>12,.0f}")
    print("\nratios (targets from issues 5 and 21):")
    rows = (
        (
            "full validation, raw store / bare validation",
            count / full["stored_s"] / validate_rate,
            ">= 1.4x",
        ),
        (
            "full validation, end to end / bare validation",
            count / rounds["total_s"] / validate_rate,
            ">= 1.0x (issue 21)",
        ),
        (
            "   the same, mapping after the storing",
            count / full["total_s"] / validate_rate,
            "",
        ),
        (
            "validation off, raw store / bare orjson",
            count / trusted["stored_s"] / parse_rate,
            ">= 20%",
        ),
        ("validation off, end to end / bare orjson", count / trusted["total_s"] / parse_rate, ""),
        ("raw store floor (SQLite alone) / bare orjson", floor / parse_rate, ""),
        ("validation off, raw store / raw store floor", count / trusted["stored_s"] / floor, ""),
    )
    if postgres:
        copied, row_by_row = postgres["copy"], postgres["row by row"]
        in_process = postgres["copy, intake in-process"]
        rows += (
            (
                "PostgreSQL copy, raw store / bare orjson",
                count / copied["stored_s"] / parse_pg_rate,
                ">= 20% (issue 21)",
            ),
            (
                "PostgreSQL copy, end to end / bare orjson",
                count / copied["total_s"] / parse_pg_rate,
                "",
            ),
            (
                "PostgreSQL copy in-process, raw store / bare orjson",
                count / in_process["stored_s"] / parse_pg_rate,
                "",
            ),
            (
                "PostgreSQL row by row, raw store / bare orjson",
                count / row_by_row["stored_s"] / parse_pg_rate,
                "(before COPY)",
            ),
            (
                "PostgreSQL row by row, end to end / bare orjson",
                count / row_by_row["total_s"] / parse_pg_rate,
                "",
            ),
            (
                "PostgreSQL raw store: copy / row by row",
                row_by_row["stored_s"] / copied["stored_s"],
                "",
            ),
        )
    for label, ratio, target in rows:
        shown = f"{ratio:.2f}x" if ratio >= 0.1 else f"{ratio:.1%}"
        print(f"  {label:<50} {shown:>8}   {target}")


if __name__ == "__main__":
    main()
