"""Push latency while a bulk import runs into the same store, on SQLite and PostgreSQL.

For each backend: `journey serve` on a fresh store with one push client; one client
PUTs a Patient and an Encounter (its own person) in turn, one request at a time,
first with the store quiet (the baseline, same run), then while `journey import`
stores and maps an NDJSON file of `--people` people (3 resources each) into the
same store. Prints p50 / p99 / max per PUT in both phases and the ratio of the p99s.
The target (issue 12): p99 under a concurrent import below 1 s on both backends.

    scripts/bench-push-under-import --people 20000
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
from push_bench import Result, free_port, start
from scale_bench import Backend, fresh_postgres, journey_import, write_people

JOURNEY = str(Path(sys.executable).parent / "journey")
PUSH_KEY = "bench-push-key"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"


def pushed(n: int) -> list[tuple[str, bytes]]:
    patient = {
        "resourceType": "Patient",
        "id": f"pushed-{n}",
        "identifier": [{"system": "urn:bench:push-mrn", "value": str(n)}],
        "birthDate": "1980-01-01",
    }
    visit = {
        "resourceType": "Encounter",
        "id": f"pushed-{n}-e",
        "status": "finished",
        "class": {"system": ACT_CODE, "code": "EMER"},
        "subject": {"reference": f"Patient/pushed-{n}"},
        "period": {"start": "2026-01-01T10:00:00Z"},
    }
    return [
        (f"Patient/{patient['id']}", orjson.dumps(patient)),
        (f"Encounter/{visit['id']}", orjson.dumps(visit)),
    ]


def push_while(url: str, first: int, keep_going: Any, at_least: int) -> Result:
    """PUT one resource at a time until `keep_going()` is false (and `at_least` were sent)."""
    headers = {"Authorization": f"Bearer {PUSH_KEY}", "Content-Type": "application/fhir+json"}
    latencies: list[float] = []
    n = first
    started = time.perf_counter()
    with httpx.Client(base_url=f"{url}/fhir", headers=headers, timeout=120) as http:
        while keep_going() or len(latencies) < at_least:
            for path, body in pushed(n):
                began = time.perf_counter()
                answer = http.put(f"/{path}", content=body)
                latencies.append(time.perf_counter() - began)
                if answer.status_code not in (200, 201):
                    raise SystemExit(f"PUT {path}: HTTP {answer.status_code}: {answer.text[:300]}")
            n += 1
    return Result(len(latencies), time.perf_counter() - started, latencies)


def measure(backend: Backend, data: Path, folder: Path) -> tuple[Result, Result, float]:
    config = folder / f"{backend.name}.toml"
    config.write_text(
        '[[push_clients]]\nsource = "clinic"\nkey_env = "BENCH_PUSH_KEY"\n', encoding="utf-8"
    )
    port = free_port()
    env = {
        **os.environ,
        "JOURNEY_DATABASE_URL": backend.url,
        "JOURNEY_CONFIG": str(config),
        "BENCH_PUSH_KEY": PUSH_KEY,
        "JOURNEY_API_KEYS": "bench",
        # A benchmark measures the server, not its rate limit.
        "JOURNEY_RATE_LIMIT_PER_MINUTE": "0",
    }
    url = f"http://127.0.0.1:{port}"
    server = start([JOURNEY, "serve", "--port", str(port)], env, f"{url}/healthz", folder)
    try:
        quiet = push_while(url, 0, lambda: False, 200)
        importing = journey_import(backend.url, "bulk", data, folder)
        running = threading.Event()
        running.set()

        def watch() -> None:
            importing.wait()
            running.clear()

        started = time.perf_counter()
        threading.Thread(target=watch, daemon=True).start()
        loaded = push_while(url, 10_000, running.is_set, 20)
        import_seconds = time.perf_counter() - started
        if importing.returncode not in (0, 3):
            raise SystemExit(f"journey import failed: {importing.stderr.read().decode()[-2000:]}")
    finally:
        server.terminate()
        server.wait(timeout=30)
    return quiet, loaded, import_seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--people", type=int, default=20_000)
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        data = folder / "bulk.ndjson"
        resources = write_people(data, 0, args.people, "bulk")
        print(f"import: {resources:,} resources ({data.stat().st_size / 1e6:.1f} MB NDJSON)")
        columns = ("PUTs", "p50 ms", "p99 ms", "max ms")
        print(f"{'backend':<11} {'phase':<17} " + " ".join(f"{c:>8}" for c in columns))
        for kind in ("sqlite", "postgresql"):
            if args.backend not in (kind, "both"):
                continue
            drop = None
            if kind == "sqlite":
                backend = Backend("SQLite", f"sqlite:///{folder / 'journey.db'}")
            else:
                backend, drop = fresh_postgres("push_import")
            try:
                quiet, loaded, seconds = measure(backend, data, folder)
            finally:
                if drop is not None:
                    drop()
            for phase, result in (("quiet", quiet), (f"import ({seconds:.0f} s)", loaded)):
                print(
                    f"{backend.name:<11} {phase:<17} {len(result.latencies):>6} "
                    f"{result.percentile(0.5):>8.1f} {result.percentile(0.99):>8.1f} "
                    f"{max(result.latencies) * 1000:>8.1f}"
                )
            ratio = loaded.percentile(0.99) / quiet.percentile(0.99)
            verdict = "met" if loaded.percentile(0.99) < 1000 else "NOT met"
            print(f"{backend.name:<11} p99 under import / quiet: {ratio:.1f}x; < 1 s: {verdict}")


if __name__ == "__main__":
    main()
