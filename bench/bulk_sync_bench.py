"""Bulk Data sync benchmark: a `$export` from sekmet-fhir, mapped while stored or after.

Starts sekmet-fhir on loopback (its traffic log off, as for a load run), seeds it,
then runs `journey sync` of a Bulk Data source (Patient and Encounter, validation
on, worker processes on every core) into a fresh SQLite store, in pairs: once
mapping while the files are stored (what a sync does on SQLite with validation),
once mapping after the storing, alternating which goes first. Each sync runs in a
child process of its own. Prints each sync's resources/s end to end (kick-off to
mapped), the pair's ratio, and sekmet's share of the wall time on its own CPU
(the server runs on the same two cores: its export work is in every figure).

    scripts/bench-bulk-sync --patients 18000 --pairs 3
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson
from pull_bench import start_server

from integration.config import Settings
from integration.sources import SourceConfig
from integration.store.engine import open_store
from integration.sync import bulk as bulk_module
from integration.sync.runners import sync_source
from mappings.rulepack import load_rule_pack


def cpu_seconds_of(pid: int) -> float:
    """A process's user and system CPU time so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100  # clock ticks (USER_HZ = 100)


def child_sync(base_url: str, database: str, while_storing: bool) -> None:
    """In the child process: one full Bulk sync, its figures as JSON."""
    source = SourceConfig.model_validate(
        {
            "name": "bench-bulk",
            "kind": "payer",
            "base_url": base_url,
            "mode": "bulk",
            "resource_types": ["Patient", "Encounter"],
        }
    )
    pipeline_for = bulk_module.ingest_pipeline

    def chosen(*args: object, **kwargs: object) -> object:
        pipeline = pipeline_for(*args, **kwargs)  # type: ignore[arg-type]
        pipeline.derives_while_storing = pipeline.derives_while_storing and while_storing
        return pipeline

    bulk_module.ingest_pipeline = chosen  # type: ignore[assignment]
    engine = open_store(f"sqlite:///{database}")
    started = time.perf_counter()
    summary = asyncio.run(sync_source(engine, load_rule_pack(), Settings(), source, full=True))
    seconds = time.perf_counter() - started
    if summary.failed:
        raise SystemExit(f"the sync failed: {summary.error or summary.types}")
    print(orjson.dumps({"resources": summary.derive.resources, "seconds": seconds}).decode())


def run_sync(
    base_url: str, database: Path, while_storing: bool, server_pid: int
) -> tuple[int, float, float]:
    """resources, seconds, sekmet's CPU seconds during the sync."""
    server_cpu = cpu_seconds_of(server_pid)
    done = subprocess.run(
        [sys.executable, __file__, "--child", base_url, str(database), str(int(while_storing))],
        capture_output=True,
        text=True,
        check=True,
    )
    figures = orjson.loads(done.stdout.strip().splitlines()[-1])
    return figures["resources"], figures["seconds"], cpu_seconds_of(server_pid) - server_cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--patients", type=int, default=18000, help="sekmet seed --count")
    parser.add_argument("--pairs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-bulk-sync-") as scratch:
        folder = Path(scratch)
        server, base_url = start_server(folder, args.patients)
        try:
            ratios: list[float] = []
            head = ("pair", "mapping", "resources", "s", "/s", "sekmet CPU")
            print("{:>4}  {:<15} {:>9} {:>7} {:>7} {:>10}".format(*head))
            for pair in range(args.pairs):
                order = (True, False) if pair % 2 == 0 else (False, True)
                seconds: dict[bool, float] = {}
                for while_storing in order:
                    database = folder / f"journey-{pair}-{int(while_storing)}.db"
                    resources, took, server_cpu = run_sync(
                        base_url, database, while_storing, server.pid
                    )
                    seconds[while_storing] = took
                    label = "while storing" if while_storing else "after storing"
                    print(
                        f"{pair + 1:>4}  {label:<15} {resources:>9,} {took:>7.2f} "
                        f"{resources / took:>7,.0f} {server_cpu / took:>9.0%}",
                        flush=True,
                    )
                ratios.append(seconds[False] / seconds[True])
                print(f"      speed-up while storing: {ratios[-1]:.2f}x", flush=True)
            print(
                f"speed-up, median of {len(ratios)} pairs: {statistics.median(ratios):.2f}x "
                f"(range {min(ratios):.2f}-{max(ratios):.2f}x)"
            )
        finally:
            server.terminate()
            server.wait(timeout=30)


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--child":
        child_sync(sys.argv[2], sys.argv[3], sys.argv[4] == "1")
    else:
        main()
