"""Push benchmark: transaction Bundles into /fhir against a bare orjson endpoint, in one run.

Starts `journey serve` (a fresh SQLite store) and a bare FastAPI app whose only
endpoint reads the body and parses it with orjson, both with uvicorn on
loopback. Then 8 concurrent clients each send the same number of transaction
Bundles of 50 entries (10 Patients, each with 4 Encounters referencing it by
urn:uuid) to each server in turn. Prints resources/s, p50/p99 latency per
Bundle, and the ratio ours / bare.

With `--store-sizes 10000,1000000` the same pushes go, one size after another, to a
store first filled to that many resources of the pushing source (Patients with two
Encounters each, by `journey import`, and one row per resource in the push's own
identifier and content indexes, as pushes would have left them), each beside its
own bare baseline; then the p99 at the largest size against the smallest (issue 21:
flat with store size, within 1.5x from 10k to 1M).

    scripts/bench-push --bundles 20
    scripts/bench-push --bundles 20 --store-sizes 10000,1000000
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
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
from fastapi import FastAPI, Request
from starlette.responses import Response

PUSH_KEY = "bench-push-key"
CLIENTS = 8
PATIENTS_PER_BUNDLE = 10
ENCOUNTERS_PER_PATIENT = 4
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"


def bare_app() -> FastAPI:
    """The baseline: receive the body and parse it, nothing else."""
    app = FastAPI()

    @app.post("/fhir")
    async def parse_only(request: Request) -> Response:
        bundle = orjson.loads(await request.body())
        reply: dict[str, Any] = {"resourceType": "Bundle", "type": "transaction-response"}
        reply["entry"] = [{"response": {"status": "200 OK"}} for _ in bundle["entry"]]
        return Response(orjson.dumps(reply), media_type="application/fhir+json")

    return app


def transaction(rng: random.Random) -> dict[str, Any]:
    entries: list[dict[str, Any]] = []
    classes = ("AMB", "EMER", "IMP", "VR")
    for _ in range(PATIENTS_PER_BUNDLE):
        full_url = f"urn:uuid:{uuid.UUID(int=rng.getrandbits(128), version=4)}"
        mrn = str(rng.getrandbits(48))
        born = f"{rng.randint(1930, 2020)}-0{rng.randint(1, 9)}-1{rng.randint(0, 9)}"
        entries.append(
            {
                "fullUrl": full_url,
                "resource": {
                    "resourceType": "Patient",
                    "identifier": [{"system": "urn:oid:1.2.36.146.595.217.0.1", "value": mrn}],
                    "gender": rng.choice(("female", "male")),
                    "birthDate": born,
                },
                "request": {
                    "method": "POST",
                    "url": "Patient",
                    "ifNoneExist": f"identifier=urn:oid:1.2.36.146.595.217.0.1|{mrn}",
                },
            }
        )
        for _ in range(ENCOUNTERS_PER_PATIENT):
            day = rng.randint(1, 28)
            entries.append(
                {
                    "resource": {
                        "resourceType": "Encounter",
                        "status": "finished",
                        "class": {"system": ACT_CODE, "code": rng.choice(classes)},
                        "subject": {"reference": full_url},
                        "period": {
                            "start": f"2026-0{rng.randint(1, 9)}-{day:02d}T09:00:00Z",
                            "end": f"2026-0{rng.randint(1, 9)}-{day:02d}T10:30:00Z",
                        },
                    },
                    "request": {"method": "POST", "url": "Encounter"},
                }
            )
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


@dataclass(frozen=True)
class Result:
    resources: int
    seconds: float
    latencies: list[float]

    @property
    def rate(self) -> float:
        return self.resources / self.seconds

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000


async def push_all(url: str, bundles: list[list[bytes]]) -> Result:
    latencies: list[float] = []

    async def client(mine: list[bytes]) -> None:
        headers = {"Authorization": f"Bearer {PUSH_KEY}", "Content-Type": "application/fhir+json"}
        async with httpx.AsyncClient(headers=headers, timeout=300) as http:
            for body in mine:
                started = time.perf_counter()
                response = await http.post(url, content=body)
                latencies.append(time.perf_counter() - started)
                if response.status_code != 200:
                    raise SystemExit(f"{url}: HTTP {response.status_code}: {response.text[:300]}")

    started = time.perf_counter()
    await asyncio.gather(*(client(mine) for mine in bundles))
    seconds = time.perf_counter() - started
    count = sum(len(mine) for mine in bundles) * PATIENTS_PER_BUNDLE * (1 + ENCOUNTERS_PER_PATIENT)
    return Result(count, seconds, latencies)


def start(command: list[str], env: dict[str, str], url: str, cwd: Path) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        command, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 60
    while True:
        try:
            httpx.get(url, timeout=2)
            return process
        except httpx.TransportError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"{command[0]} did not start") from None
            time.sleep(0.3)


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


SOURCE = "bench-ehr"


def fill_store(url: str, folder: Path, resources: int) -> float:
    """`resources` stored and mapped under the pushing source, and the push's index
    tables filled as pushes would have: seconds it took."""
    from scale_bench import journey_import, write_people
    from sqlalchemy import create_engine, text

    started = time.perf_counter()
    path = folder / "fill.ndjson"
    write_people(path, 0, max(1, resources // 3), SOURCE)
    # Validation off: this is the setup, not what is measured (the same rows either way).
    process = journey_import(url, SOURCE, path, folder, trusted=True)
    _, err = process.communicate()
    if process.returncode not in (0, 3):
        raise SystemExit(f"journey import failed: {err.decode()[-2000:]}")
    path.unlink()
    # The people's episodes too, as `journey serve` keeps them up in the background:
    # otherwise its first minutes recompute the import's people beside the pushes.
    from integration.journey.episodes import refresh_episodes
    from integration.journey.rule_packs import store_pack
    from integration.store.engine import open_store

    store = open_store(url)
    refresh_episodes(store, store_pack(store))
    store.dispose()
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO resource_identifiers "
                "(source, resource_type, system, value, resource_id) "
                "SELECT source, resource_type, 'urn:bench:fill', resource_id, resource_id "
                "FROM current_resources"
            )
        )
        conn.execute(
            text(
                "INSERT INTO pushed_content (source, resource_type, content_hash, resource_id) "
                "SELECT source, resource_type, substr(hex(randomblob(20)), 1, 40), resource_id "
                "FROM current_resources"
            )
        )
    engine.dispose()
    return time.perf_counter() - started


def measure(
    folder: Path, bodies: list[list[bytes]], warm_up: list[list[bytes]], store_size: int
) -> tuple[Result, Result]:
    """Ours then bare, each server started fresh on a store of `store_size` resources."""
    journey = str(Path(sys.executable).parent / "journey")
    config = folder / "journey.toml"
    config.write_text(
        f'[[push_clients]]\nsource = "{SOURCE}"\nkey_env = "BENCH_PUSH_KEY"\n', encoding="utf-8"
    )
    url = f"sqlite:///{folder / 'journey.db'}"
    env = {
        **os.environ,
        "JOURNEY_CONFIG": str(config),
        "JOURNEY_DATABASE_URL": url,
        "JOURNEY_API_KEYS": "bench-read-key",
        # A benchmark measures the server, not its rate limit.
        "JOURNEY_RATE_LIMIT_PER_MINUTE": "0",
        "BENCH_PUSH_KEY": PUSH_KEY,
    }
    if store_size:
        seconds = fill_store(url, folder, store_size)
        print(f"  store filled to {store_size:,} resources in {seconds:.0f} s", flush=True)
    ours_port, bare_port = free_port(), free_port()
    ours = start(
        [journey, "serve", "--port", str(ours_port)],
        env,
        f"http://127.0.0.1:{ours_port}/fhir/metadata",
        folder,
    )
    bare = start(
        [sys.executable, __file__, "--serve-bare", str(bare_port)],
        env,
        f"http://127.0.0.1:{bare_port}/docs",
        folder,
    )
    try:
        bare_url = f"http://127.0.0.1:{bare_port}/fhir"
        ours_url = f"http://127.0.0.1:{ours_port}/fhir"
        # One untimed Bundle per client first: connections, imports and caches warm.
        for url in (bare_url, ours_url):
            asyncio.run(push_all(url, warm_up))
        bare_result = asyncio.run(push_all(bare_url, bodies))
        ours_result = asyncio.run(push_all(ours_url, bodies))
    finally:
        for process in (ours, bare):
            process.terminate()
            process.wait(timeout=30)
    return ours_result, bare_result


def report(ours_result: Result, bare_result: Result) -> None:
    print(f"{'':<44} {'resources/s':>12} {'p50 ms':>8} {'p99 ms':>8} {'total s':>8}")
    for label, result in (
        ("bare FastAPI + orjson parse (baseline)", bare_result),
        ("journey /fhir (validate, store, map, derive)", ours_result),
    ):
        print(
            f"{label:<44} {result.rate:>12,.0f} {result.percentile(0.5):>8.1f} "
            f"{result.percentile(0.99):>8.1f} {result.seconds:>8.2f}"
        )
    print(
        f"ours / bare: {ours_result.rate / bare_result.rate:.1%} of the throughput, "
        f"p50 latency x{ours_result.percentile(0.5) / bare_result.percentile(0.5):.1f} "
        f"(single uvicorn process each, SQLite store, 2 cores shared with the clients)",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--bundles", type=int, default=20, help="Bundles per client")
    parser.add_argument(
        "--store-sizes",
        help="comma-separated store sizes (resources) to push against, e.g. 10000,1000000",
    )
    parser.add_argument("--serve-bare", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_bare:
        import uvicorn

        uvicorn.run(bare_app(), host="127.0.0.1", port=args.serve_bare, log_level="warning")
        return
    rng = random.Random(20261123)
    bodies = [[orjson.dumps(transaction(rng)) for _ in range(args.bundles)] for _ in range(CLIENTS)]
    warm_up = [[orjson.dumps(transaction(rng))] for _ in range(CLIENTS)]
    sizes = [int(size) for size in args.store_sizes.split(",")] if args.store_sizes else [0]
    print(
        f"{CLIENTS} clients x {args.bundles} transaction Bundles of "
        f"{PATIENTS_PER_BUNDLE * (1 + ENCOUNTERS_PER_PATIENT)} entries ...",
        flush=True,
    )
    p99: dict[int, float] = {}
    for size in sizes:
        with tempfile.TemporaryDirectory(prefix="journey-push-bench-") as name:
            if size:
                print(f"store of {size:,} resources:", flush=True)
            ours_result, bare_result = measure(Path(name), bodies, warm_up, size)
        report(ours_result, bare_result)
        p99[size] = ours_result.percentile(0.99)
    if len(sizes) > 1:
        small, large = min(sizes), max(sizes)
        print(
            f"push p99 at {large:,} stored resources / at {small:,}: "
            f"{p99[large]:.0f} / {p99[small]:.0f} ms = {p99[large] / p99[small]:.2f}x "
            "(goal: within 1.5x)"
        )


if __name__ == "__main__":
    main()
