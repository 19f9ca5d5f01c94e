"""Episodes and outcomes benchmark: what grouping a person's records into episodes
and measuring a cohort cost, against bare reads of the same rows, in one run.

Imports the demo population (both sources, N people) into a fresh SQLite store,
then measures, single process:

  1. refresh: recompute every person's kept episodes (`refresh_episodes`), people/s;
     baseline: reading the same people's shown records alone (`journey_items`).
  2. cohort report (`GET /metrics/outcomes`' work), s; baseline: reading the kept
     episodes alone (rows fetched and their JSON parsed).
  3. one person's episodes on read (`/people/{id}/episodes`' work), p50 and p99
     over every person; baseline: that person's first journey page (`queries.journey`).

    scripts/bench-outcomes --people 5000
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select

from integration.cli.demo_population import write_sample
from integration.clock import utc_now
from integration.ingest.pipeline import IngestPipeline
from integration.journey.episodes import episodes_of_person, refresh_episodes
from integration.journey.outcomes import OutcomeQuery, outcome_report
from integration.store import episodes as episodes_store
from integration.store import queries
from integration.store.engine import open_store
from integration.store.schema import people
from mappings.rulepack import RulePack, load_rule_pack


def timed(run: Callable[[], Any]) -> float:
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def demo_store(folder: str, people_count: int, pack: RulePack) -> Engine:
    """A fresh SQLite store in `folder` holding the demo population (both sources)."""
    engine = open_store(f"sqlite:///{Path(folder) / 'bench.db'}")
    for source, path in write_sample(Path(folder) / "data", seed=5, people=people_count).items():
        IngestPipeline(engine, pack, source, 16 << 20).run([path])
    return engine


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--people", type=int, default=2000, help="people in the population")
    args = parser.parse_args()
    pack = load_rule_pack()
    with tempfile.TemporaryDirectory(prefix="journey-outcomes-bench-") as folder:
        engine = demo_store(folder, args.people, pack)
        with engine.connect() as conn:
            person_ids = list(
                conn.execute(select(people.c.id).where(people.c.merged_into.is_(None))).scalars()
            )

        def bare_read() -> None:
            with engine.connect() as conn:
                for at in range(0, len(person_ids), 200):
                    episodes_store.journey_items(conn, person_ids[at : at + 200])

        def refresh() -> None:
            with engine.begin() as conn:
                episodes_store.mark_stale(conn, person_ids)
            refresh_episodes(engine, pack)

        read_s, refresh_s = timed(bare_read), timed(refresh)
        with engine.connect() as conn:
            episodes = sum(1 for _ in episodes_store.stored_episodes(conn))
        print(f"{len(person_ids):,} people, {episodes:,} episodes (demo population, 2 sources)")
        print("1. refresh every person's kept episodes")
        print(f"   bare read of their records   {len(person_ids) / read_s:>10,.0f} people/s")
        print(f"   refresh (read+build+write)   {len(person_ids) / refresh_s:>10,.0f} people/s")
        print(f"   refresh / bare read          {read_s / refresh_s:>10.1%}")

        def bare_scan() -> None:
            with engine.connect() as conn:
                for _ in episodes_store.stored_episodes(conn):
                    pass

        def report() -> None:
            outcome_report(engine, pack, OutcomeQuery(as_of=utc_now()))

        scan_s, report_s = timed(bare_scan), timed(report)
        print("2. cohort outcome report over every episode")
        print(f"   bare scan of kept episodes   {scan_s:>10.3f} s")
        print(f"   report (scan+measure)        {report_s:>10.3f} s")
        print(f"   report / bare scan           {report_s / scan_s:>10.2f}x")

        now = utc_now()
        on_read: list[float] = []
        journey: list[float] = []
        with engine.connect() as conn:
            for person in person_ids:
                journey.append(timed(lambda p=person: queries.journey(conn, p, 50)))
                on_read.append(timed(lambda p=person: episodes_of_person(conn, p, pack, now)))
        print("3. one person's episodes on read (ms)")
        for label, values in (("journey page (baseline)", journey), ("episodes on read", on_read)):
            p50 = statistics.median(values) * 1000
            p99 = percentile(values, 0.99) * 1000
            print(f"   {label:<28} p50 {p50:7.2f}  p99 {p99:7.2f}")
        ratio = percentile(on_read, 0.99) / percentile(journey, 0.99)
        print(f"   episodes p99 / journey p99   {ratio:>10.2f}x")
        engine.dispose()


if __name__ == "__main__":
    main()
