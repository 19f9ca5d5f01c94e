"""Scale benchmark: SQLite against PostgreSQL, in one run.

1. Import: the same NDJSON set (people with two Encounters each) into a fresh
   SQLite store and a fresh PostgreSQL database with `journey import`, and on
   PostgreSQL once more split over two `journey import` processes running at
   once (two sources): resources/s end to end (validated, stored, mapped).
2. Journey reads: each store is filled to 1k, 10k and 100k people; at each
   size `journey serve` (one uvicorn process) answers GET
   /people/{id}/journey for random people from 8 concurrent clients; p50 and
   p99 latency and requests/s. The baseline is a bare FastAPI endpoint on the
   same uvicorn that returns a journey document of the same size with orjson
   and touches no store, measured right after each point (the machine's
   speed drifts; each ratio compares two measurements a minute apart).
   A fill marks its people's episodes stale and `journey serve` recomputes them in
   the background, so each point is read twice: while that upkeep runs (right
   after the fill) and once it has finished ("settled").

Targets (issue 6): journey read p99 within 2x from 1k to 100k people; read
throughput >= 50% of the bare endpoint. The clients share the machine's two
cores with the server, for ours and the baseline alike.

    scripts/bench-scale --people 1000,10000,100000
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
from fastapi import FastAPI
from sqlalchemy import create_engine, select
from starlette.responses import Response

sys.path.insert(0, str(Path(__file__).parent))
import scratch_postgres
from push_bench import Result, free_port, start

from integration.store import episodes as episodes_store
from integration.store.schema import people

JOURNEY = str(Path(sys.executable).parent / "journey")
API_KEY = "bench-read-key"
CLIENTS = 8
POSTGRES_ADMIN_URL = os.environ.get(
    "JOURNEY_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"


def write_people(path: Path, first: int, count: int, source: str) -> int:
    """People first..first+count, each a Patient with an ambulatory and an emergency visit."""
    rng = random.Random(first)
    with path.open("wb") as out:
        for n in range(first, first + count):
            pid = f"{source}-p{n}"
            born = f"{rng.randint(1930, 2020)}-{rng.randint(1, 12):02}-{rng.randint(1, 28):02}"
            out.write(
                orjson.dumps(
                    {
                        "resourceType": "Patient",
                        "id": pid,
                        "identifier": [{"system": "urn:bench:mrn", "value": f"{source}-{n}"}],
                        "name": [{"family": "Bench", "given": ["Person"]}],
                        "birthDate": born,
                    }
                )
                + b"\n"
            )
            for visit, klass in enumerate(("AMB", "EMER")):
                day = f"2025-{rng.randint(1, 12):02}-{rng.randint(1, 28):02}T10:00:00Z"
                out.write(
                    orjson.dumps(
                        {
                            "resourceType": "Encounter",
                            "id": f"{pid}-e{visit}",
                            "status": "finished",
                            "class": {"system": ACT_CODE, "code": klass},
                            "subject": {"reference": f"Patient/{pid}"},
                            "period": {"start": day},
                        }
                    )
                    + b"\n"
                )
    return count * 3


@dataclass
class Backend:
    name: str
    url: str


def fresh_postgres(label: str) -> tuple[Backend, Callable[[], None]]:
    """A fresh database on the bench's server, and how to drop it (`scratch_postgres`)."""
    database = scratch_postgres.fresh_postgres(POSTGRES_ADMIN_URL, label)
    url = database.__enter__()
    backend = Backend("PostgreSQL", url.replace("postgresql+psycopg://", "postgresql://", 1))
    return backend, lambda: database.__exit__(None, None, None)


def journey_import(
    url: str, source: str, path: Path, folder: Path, trusted: bool = False
) -> subprocess.Popen[bytes]:
    env = {**os.environ, "JOURNEY_DATABASE_URL": url}
    env.pop("JOURNEY_CONFIG", None)
    return subprocess.Popen(
        [JOURNEY, "import", "--source", source, *(["--trusted"] if trusted else []), str(path)],
        env=env,
        cwd=folder,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def run_imports(url: str, jobs: list[tuple[str, Path]], folder: Path) -> float:
    """Run `journey import` for each (source, file) at once; seconds until all ended."""
    started = time.perf_counter()
    processes = [journey_import(url, source, path, folder) for source, path in jobs]
    for process in processes:
        _, err = process.communicate()
        if process.returncode not in (0, 3):
            raise SystemExit(f"journey import failed: {err.decode()[-2000:]}")
    return time.perf_counter() - started


def bare_app(document: bytes) -> FastAPI:
    """The baseline: the journey route's shape, answered from memory with orjson."""
    app = FastAPI()
    parsed = orjson.loads(document)

    @app.get("/people/{person_id}/journey")
    def journey(person_id: str) -> Response:
        return Response(
            orjson.dumps({**parsed, "person_id": person_id}), media_type="application/json"
        )

    return app


async def read_journeys(base: str, ids: list[str], requests: int, seed: int) -> Result:
    rng = random.Random(seed)
    chosen = [rng.choice(ids) for _ in range(requests)]
    share = [chosen[n::CLIENTS] for n in range(CLIENTS)]
    latencies: list[float] = []

    async def client(mine: list[str]) -> None:
        headers = {"Authorization": f"Bearer {API_KEY}"}
        async with httpx.AsyncClient(base_url=base, headers=headers, timeout=60) as http:
            for person in mine:
                began = time.perf_counter()
                response = await http.get(f"/people/{person}/journey")
                latencies.append(time.perf_counter() - began)
                if response.status_code != 200:
                    raise SystemExit(f"HTTP {response.status_code}: {response.text[:300]}")

    started = time.perf_counter()
    await asyncio.gather(*(client(mine) for mine in share))
    # push_bench's Result counts items per second: here each item is one request.
    return Result(requests, time.perf_counter() - started, latencies)


def person_ids(url: str) -> list[str]:
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.connect() as conn:
        ids = list(
            conn.execute(select(people.c.id).where(people.c.merged_into.is_(None))).scalars()
        )
    engine.dispose()
    return ids


def stale_people(url: str) -> int:
    """People whose episodes `journey serve`'s upkeep has still to recompute."""
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.connect() as conn:
        count = episodes_store.stale_count(conn)
    engine.dispose()
    return count


@dataclass
class Reads:
    """One point's reads: while the upkeep ran, and after it had finished."""

    during: Result
    stale: tuple[int, int]  # people waiting for their episodes before -> after `during`
    settled: Result | None  # None when the upkeep did not finish in time
    settle_seconds: float


def wait_settled(url: str, timeout: float) -> float | None:
    """Seconds until no episodes are stale, None after `timeout`; prints progress."""
    started = time.perf_counter()
    while (left := stale_people(url)) > 0:
        waited = time.perf_counter() - started
        if waited > timeout:
            return None
        print(f"  waiting for the upkeep: {left:,} people, {waited:.0f} s", flush=True)
        time.sleep(min(15.0, max(1.0, left / 2000)))
    return time.perf_counter() - started


def measure_reads(
    backend: Backend, folder: Path, requests: int, seed: int, settle_timeout: float
) -> tuple[Reads, bytes]:
    port = free_port()
    env = {
        **os.environ,
        "JOURNEY_DATABASE_URL": backend.url,
        "JOURNEY_API_KEYS": API_KEY,
        "JOURNEY_RATE_LIMIT_PER_MINUTE": "0",
    }
    env.pop("JOURNEY_CONFIG", None)
    server = start(
        [JOURNEY, "serve", "--port", str(port)], env, f"http://127.0.0.1:{port}/healthz", folder
    )
    try:
        base = f"http://127.0.0.1:{port}"
        ids = person_ids(backend.url)
        asyncio.run(read_journeys(base, ids, 500, seed + 1))  # warm: connections, caches
        stale_before = stale_people(backend.url)
        during = asyncio.run(read_journeys(base, ids, requests, seed))
        stale = (stale_before, stale_people(backend.url))
        waited = wait_settled(backend.url, settle_timeout)
        settled = (
            None if waited is None else asyncio.run(read_journeys(base, ids, requests, seed + 2))
        )
        sample = httpx.get(
            f"{base}/people/{ids[0]}/journey", headers={"Authorization": f"Bearer {API_KEY}"}
        ).content
    finally:
        server.terminate()
        server.wait(timeout=30)
    return Reads(during, stale, settled, waited or 0.0), sample


def measure_bare(document: bytes, folder: Path, requests: int, seed: int) -> Result:
    port = free_port()
    (folder / "journey.json").write_bytes(document)
    server = start(
        [sys.executable, __file__, "--serve-bare", str(port), str(folder / "journey.json")],
        dict(os.environ),
        f"http://127.0.0.1:{port}/docs",
        folder,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        ids = [f"person-{n}" for n in range(1000)]
        asyncio.run(read_journeys(base, ids, 500, seed + 1))
        return asyncio.run(read_journeys(base, ids, requests, seed))
    finally:
        server.terminate()
        server.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--people", default="1000,10000,100000")
    parser.add_argument("--requests", type=int, default=2000, help="journey reads per size")
    parser.add_argument(
        "--import-people", type=int, default=20000, help="people in the import comparison"
    )
    parser.add_argument("--backends", default="sqlite,postgresql", help="which stores to read from")
    parser.add_argument(
        "--no-imports", action="store_true", help="skip the import comparison (step 1)"
    )
    parser.add_argument(
        "--settle-timeout",
        type=float,
        default=1200.0,
        help="seconds to wait for the episode upkeep before reading a point again",
    )
    parser.add_argument("--serve-bare", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_bare:
        import uvicorn

        port, document = args.serve_bare
        app = bare_app(Path(document).read_bytes())
        uvicorn.run(app, host="127.0.0.1", port=int(port), log_level="warning")
        return
    sizes = [int(value) for value in args.people.split(",")]
    wanted = {name.strip().lower() for name in args.backends.split(",")}
    cleanups: list[Any] = []
    imports: list[tuple[str, float]] = []
    rows: list[tuple[str, int, Reads, Result]] = []
    with tempfile.TemporaryDirectory(prefix="journey-scale-bench-") as name:
        folder = Path(name)
        try:
            if not args.no_imports:
                imports = compare_imports(folder, args.import_people, cleanups)
            # 2. Reads at growing sizes.
            backends: list[Backend] = []
            if "sqlite" in wanted:
                backends.append(Backend("SQLite", f"sqlite:///{folder / 'reads.db'}"))
            if "postgresql" in wanted:
                pg, drop = fresh_postgres("reads")
                cleanups.append(drop)
                backends.append(pg)
            # (backend, people, ours, bare measured right after): this machine's speed
            # drifts by a third within minutes, so each point gets its own baseline.
            have = 0
            for size in sizes:
                chunk = folder / f"people-{size}.ndjson"
                write_people(chunk, have, size - have, "clinic")
                for backend in backends:
                    print(f"reads: {backend.name} filled to {size:,} people ...", flush=True)
                    run_imports(backend.url, [("clinic", chunk)], folder)
                    reads, document = measure_reads(
                        backend, folder, args.requests, size, args.settle_timeout
                    )
                    bare = measure_bare(document, folder, args.requests, size)
                    rows.append((backend.name, size, reads, bare))
                have = size
        finally:
            for cleanup in cleanups:
                cleanup()
    if imports:
        print_imports(imports, args.import_people * 3)
    print_reads(rows, args.requests)


def compare_imports(
    folder: Path, people_count: int, cleanups: list[Any]
) -> list[tuple[str, float]]:
    """Step 1: the same files into SQLite, PostgreSQL, and PostgreSQL by two processes."""
    half = people_count // 2
    a, b = folder / "import-a.ndjson", folder / "import-b.ndjson"
    count = write_people(a, 0, half, "site-a") + write_people(b, half, half, "site-b")
    imports: list[tuple[str, float]] = []
    sqlite = Backend("SQLite", f"sqlite:///{folder / 'import.db'}")
    print(f"import: {count:,} resources into SQLite ...", flush=True)
    seconds = run_imports(sqlite.url, [("site-a", a)], folder)
    seconds += run_imports(sqlite.url, [("site-b", b)], folder)
    imports.append(("SQLite, one import at a time", count / seconds))
    for processes in (1, 2):
        pg, drop = fresh_postgres(f"import{processes}")
        cleanups.append(drop)
        print(f"import: into PostgreSQL, {processes} process(es) ...", flush=True)
        if processes == 1:
            seconds = run_imports(pg.url, [("site-a", a)], folder)
            seconds += run_imports(pg.url, [("site-b", b)], folder)
        else:
            seconds = run_imports(pg.url, [("site-a", a), ("site-b", b)], folder)
        how = "one import at a time" if processes == 1 else "two imports at once"
        imports.append((f"PostgreSQL, {how}", count / seconds))
    return imports


def print_imports(imports: list[tuple[str, float]], count: int) -> None:
    print(f"\nimport of {count:,} resources (full validation, stored and mapped):")
    for label, rate in imports:
        print(f"  {label:<40} {rate:>10,.0f} resources/s")
    single_pg = imports[1][1]
    print(f"  PostgreSQL, two at once / one at a time: {imports[2][1] / single_pg:.2f}x")


def print_reads(rows: list[tuple[str, int, Reads, Result]], requests: int) -> None:
    print(f"\njourney reads, {CLIENTS} clients, {requests} requests each point:")
    print(
        f"  {'':<12} {'people':>8} {'':<8} {'p50 ms':>8} {'p99 ms':>8} {'req/s':>8}"
        f"   {'bare p50':>8} {'bare p99':>8} {'bare r/s':>8} {'vs bare':>8}"
    )
    for label, size, reads, bare in rows:
        print(
            f"  {label:<12} {size:>8,} {'during':<8} {reads.during.percentile(0.5):>8.1f} "
            f"{reads.during.percentile(0.99):>8.1f} {reads.during.rate:>8,.0f}   "
            f"{bare.percentile(0.5):>8.1f} {bare.percentile(0.99):>8.1f} {bare.rate:>8,.0f} "
            f"{reads.during.rate / bare.rate:>7.0%}"
            f"   stale people {reads.stale[0]:,} -> {reads.stale[1]:,}"
        )
        if reads.settled is None:
            print(f"  {'':<12} {'':>8} settled  (the upkeep did not finish in time)")
        else:
            print(
                f"  {'':<12} {'':>8} {'settled':<8} {reads.settled.percentile(0.5):>8.1f} "
                f"{reads.settled.percentile(0.99):>8.1f} {reads.settled.rate:>8,.0f}"
                f"   {'':>8} {'':>8} {'':>8} {reads.settled.rate / bare.rate:>7.0%}"
                f"   upkeep finished {reads.settle_seconds:.0f} s after the reads"
            )
    print("\ntargets (issue 6, issue 21): p99 at the largest size / at the smallest <= 2x")
    for kind in ("SQLite", "PostgreSQL"):
        mine = [(size, reads, bare) for label, size, reads, bare in rows if label == kind]
        if not mine:
            continue
        (small, first, _), (large, last, _) = mine[0], mine[-1]
        growth = last.during.percentile(0.99) / first.during.percentile(0.99)
        line = f"  {kind}: p99 at {large:,} / at {small:,} people: during upkeep {growth:.2f}x"
        if first.settled is not None and last.settled is not None:
            settled = last.settled.percentile(0.99) / first.settled.percentile(0.99)
            line += f", settled {settled:.2f}x"
        worst = min(reads.during.rate / bare.rate for _, reads, bare in mine)
        print(f"{line}; lowest throughput {worst:.0%} of the bare endpoint's")


if __name__ == "__main__":
    main()
