"""Audit benchmark: what the audit trail adds to a journey read, in one run.

Fills a SQLite store with the demo population, then starts two `journey serve`
processes on it, one with the audit trail (the default) and one with
JOURNEY_AUDIT=false. One client reads journeys (`GET /people/{id}/journey`) from
each in turn, `--rounds` rounds of `--reads` reads, alternating servers so the
machine's drift falls on both. Prints p50, p99 and reads/s for each, and the
ratios audited / unaudited (goal: no more than 1.2x), then checks that every
audited read left its row.

    scripts/bench-audit --people 500 --reads 400 --rounds 5
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from sqlalchemy import func, select

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from integration.cli.demo_population import write_sample  # noqa: E402
from integration.ingest.pipeline import IngestPipeline  # noqa: E402
from integration.store.engine import open_store  # noqa: E402
from integration.store.schema import audit_events, people  # noqa: E402
from mappings.rulepack import load_rule_pack  # noqa: E402

JOURNEY = str(Path(sys.executable).parent / "journey")
KEY = "bench-key"


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve(url: str, audit: bool, folder: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {
        **os.environ,
        "JOURNEY_DATABASE_URL": url,
        "JOURNEY_API_KEYS": KEY,
        "JOURNEY_AUDIT": "true" if audit else "false",
        "JOURNEY_RATE_LIMIT_PER_MINUTE": "0",
        "JOURNEY_LOG_LEVEL": "WARNING",
    }
    process = subprocess.Popen(
        [JOURNEY, "serve", "--port", str(port)],
        env=env,
        cwd=folder,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return process, base
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit("journey serve did not start")
        time.sleep(0.2)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--people", type=int, default=500)
    parser.add_argument("--reads", type=int, default=400, help="reads per round and server")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    pack = load_rule_pack()
    with tempfile.TemporaryDirectory(prefix="journey-audit-bench-") as tmp:
        folder = Path(tmp)
        url = f"sqlite:///{folder / 'bench.db'}"
        engine = open_store(url)
        for source, path in write_sample(folder / "data", seed=5, people=args.people).items():
            IngestPipeline(engine, pack, source, 16 << 20).run([path])
        with engine.connect() as conn:
            ids = list(
                conn.execute(select(people.c.id).where(people.c.merged_into.is_(None))).scalars()
            )
        audited, audited_url = serve(url, True, folder)
        plain, plain_url = serve(url, False, folder)
        times: dict[str, list[float]] = {"audited": [], "unaudited": []}
        spent = {"audited": 0.0, "unaudited": 0.0}
        try:
            with httpx.Client(headers={"Authorization": f"Bearer {KEY}"}, timeout=30) as client:
                for base in (audited_url, plain_url):  # warm both
                    for person in ids[:50]:
                        client.get(f"{base}/people/{person}/journey")
                for round_ in range(args.rounds):
                    order = [("audited", audited_url), ("unaudited", plain_url)]
                    for label, base in order if round_ % 2 == 0 else order[::-1]:
                        started = time.perf_counter()
                        for n in range(args.reads):
                            person = ids[(round_ * args.reads + n) % len(ids)]
                            began = time.perf_counter()
                            answer = client.get(f"{base}/people/{person}/journey")
                            times[label].append(time.perf_counter() - began)
                            assert answer.status_code == 200
                        spent[label] += time.perf_counter() - started
        finally:
            for process in (audited, plain):
                process.terminate()
                process.wait(timeout=30)
        with engine.connect() as conn:
            rows = conn.execute(select(func.count()).select_from(audit_events)).scalar_one()
        reads = args.reads * args.rounds
        print(
            f"audit: {len(ids):,} people; {reads:,} journey reads per server, {args.rounds} rounds"
        )
        print(f"  {'':<12} {'p50':>9} {'p99':>9} {'reads/s':>9}")
        for label in ("unaudited", "audited"):
            p50 = statistics.median(times[label]) * 1000
            p99 = percentile(times[label], 0.99) * 1000
            print(f"  {label:<12} {p50:>7.2f}ms {p99:>7.2f}ms {reads / spent[label]:>9,.0f}")
        p50_ratio = statistics.median(times["audited"]) / statistics.median(times["unaudited"])
        p99_ratio = percentile(times["audited"], 0.99) / percentile(times["unaudited"], 0.99)
        rate_ratio = spent["audited"] / spent["unaudited"]
        print(f"  audited / unaudited: p50 {p50_ratio:.2f}x, p99 {p99_ratio:.2f}x,", end=" ")
        print(f"time {rate_ratio:.2f}x")
        print(f"  goal <= 1.2x: {'met' if max(p50_ratio, rate_ratio) <= 1.2 else 'NOT met'}")
        print(f"  audit rows written: {rows:,} (warm-up and measured reads: {50 + reads:,})")


if __name__ == "__main__":
    main()
