"""Population benchmark: what limiting a client to a population costs a read, and
whether a person outside it can be told from nobody by the time an answer takes.

Fills a store with `--people` people (synthetic rows: a clinic's, a payer's, and one
in ten known to both), then, in one run and interleaved so the machine's drift falls
on all alike:
- a page of 50 people (`GET /people`'s query) for a client that sees everyone, and
  for one limited to the clinic: p50, p99 and the ratio (the limit is a condition in
  the query, so a page costs index probes, not a scan of the population);
- the person lookup of `GET /people/{id}` for the clinic's client, asked about a payer
  member (outside) and about an id nobody has: p50 of each and the ratio (goal: 1.0,
  no difference an attacker could measure), over `--reads` reads each.

    scripts/bench-populations --people 100000 --reads 2000
    scripts/bench-populations --database-url postgresql+psycopg://journey@127.0.0.1/bench
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from sqlalchemy import Engine, delete  # noqa: E402

from integration.access.population import Population  # noqa: E402
from integration.access.principal import Principal  # noqa: E402
from integration.access.scopes import ALL  # noqa: E402
from integration.access.visibility import readable, visible_person  # noqa: E402
from integration.store import queries  # noqa: E402
from integration.store.engine import open_store  # noqa: E402
from integration.store.schema import people, person_links  # noqa: E402
from integration.store.upsert import execute_many  # noqa: E402

NOW = "2026-01-01T00:00:00Z"
CLINIC = Principal("clinic-app", "api-key", ALL, population=Population(sources=("clinic",)))
EVERYONE = Principal("admin", "api-key", ALL)


def fill(engine: Engine, count: int) -> tuple[list[str], list[str]]:
    """`count` people; answers the ids of the payer's members only and of the clinic's."""
    rng = random.Random(7)
    payer_only: list[str] = []
    clinic: list[str] = []
    with engine.begin() as conn:
        conn.execute(delete(person_links))
        conn.execute(delete(people))
        for start in range(0, count, 5000):
            rows, links = [], []
            for n in range(start, min(start + 5000, count)):
                person_id = str(uuid.UUID(int=rng.getrandbits(128)))
                rows.append({"id": person_id, "created_at": NOW, "display_name": f"P {n}"})
                kind = n % 10
                sources = (
                    ["clinic", "payer"] if kind == 0 else ["clinic"] if kind < 6 else ["payer"]
                )
                for source in sources:
                    links.append(
                        {"source": source, "patient_id": f"{source}-{n}", "person_id": person_id}
                    )
                (clinic if "clinic" in sources else payer_only).append(person_id)
            execute_many(conn, people.insert(), rows)
            execute_many(conn, person_links.insert(), links)
    with engine.begin() as conn:  # planner statistics, as a live store's autovacuum keeps
        conn.exec_driver_sql("ANALYZE")
    return payer_only, clinic


def timed(run: Callable[[], object]) -> float:
    started = time.perf_counter()
    run()
    return (time.perf_counter() - started) * 1000


def p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=100_000)
    parser.add_argument("--reads", type=int, default=2000)
    parser.add_argument("--database-url", default=None, help="default: a SQLite file")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-populations-"))
    url = args.database_url or f"sqlite:///{folder / 'store.db'}"
    engine = open_store(url)
    started = time.perf_counter()
    payer_only, _ = fill(engine, args.people)
    took = time.perf_counter() - started
    print(f"store: {args.people:,} people on {engine.dialect.name}, filled in {took:.1f} s")
    rng = random.Random(11)
    pages: dict[str, list[float]] = {"everyone": [], "clinic": []}
    lookups: dict[str, list[float]] = {"outside": [], "nobody": []}
    with engine.connect() as conn:
        for _ in range(args.reads):
            after = str(uuid.UUID(int=rng.getrandbits(128)))
            for label, who in (("everyone", EVERYONE), ("clinic", CLINIC)):
                pages[label].append(
                    timed(
                        lambda who=who, after=after: queries.list_people(
                            conn, 51, after, None, readable(conn, who).where(people.c.id)
                        )
                    )
                )
            outsider = rng.choice(payer_only)
            nobody = str(uuid.UUID(int=rng.getrandbits(128)))
            pair = [("outside", outsider), ("nobody", nobody)]
            rng.shuffle(pair)
            for label, person_id in pair:
                lookups[label].append(timed(lambda i=person_id: visible_person(conn, CLINIC, i)))
                assert visible_person(conn, CLINIC, person_id) is None
    print(f"\na page of 50 people, {args.reads} reads each (ms):")
    for label, values in pages.items():
        print(f"  {label:9} p50 {p(values, 0.5):7.3f}  p99 {p(values, 0.99):7.3f}")
    print(
        f"  limited / everyone: p50 {p(pages['clinic'], 0.5) / p(pages['everyone'], 0.5):.2f}x,"
        f" p99 {p(pages['clinic'], 0.99) / p(pages['everyone'], 0.99):.2f}x"
    )
    print(f"\nthe person lookup for the clinic's client, {args.reads} each (ms):")
    for label, values in lookups.items():
        print(f"  {label:8} p50 {p(values, 0.5):7.3f}  mean {statistics.fmean(values):7.3f}")
    ratio = p(lookups["outside"], 0.5) / p(lookups["nobody"], 0.5)
    print(f"  outside / nobody: p50 {ratio:.2f}x (goal: 1.0)")
    engine.dispose()


if __name__ == "__main__":
    main()
