"""Pull benchmark: `journey sync` against a plain sequential next-link loop, in one run.

Two servers, each on loopback, each answering both contenders:

- the latency-bound peer (`bench/latency_peer.py`, its own process): pre-encoded
  search pages answered after an asyncio sleep of the latency, at almost no CPU, so
  the network's latency, not a server's work, is what a pull waits for;
- sekmet-fhir, a real FHIR server, seeded; it has no latency of its own, so a
  client-side transport adds it to every request of both contenders (as a network
  between them would). It shares this machine's two cores and answers in one
  process, so its CPU time is a floor under any client's time.

For each latency, fetching the same resource types:

  1. baseline: one request at a time, following Bundle.link[next], resources
     only counted (no validation, no storage);
  2. ours: `sync_source` into a fresh SQLite store (validate, store, map).

Prints both times, the resource counts (they must match), the ratio, the requests
each made, the CPU each server spent answering them (and its share of the
contender's time), and the CPU our own process spent: where that is close to our
time, we are CPU-bound, and the ratio is at most the baseline's time over it.
Target for issue 21: ours >= 4x faster than the baseline at 50 ms against the
latency-bound peer.

    scripts/bench-pull --patients 3000 --latency-ms 50,100,200
    scripts/bench-pull --peers latency --latency-ms 50
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import httpx

from integration.config import Settings
from integration.sources import SourceConfig
from integration.store.engine import open_store
from integration.sync.runners import sync_source
from mappings.rulepack import load_rule_pack

SEKMET = str(Path(sys.executable).parent / "sekmet")
TYPES = ("Patient", "Encounter")


class DelayTransport(httpx.AsyncBaseTransport):
    """Adds a fixed latency to every request, like a network hop would; counts requests."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.requests = 0
        self.inner = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        await asyncio.sleep(self.delay)
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(folder: Path, patients: int) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    base_url = f"http://127.0.0.1:{port}/fhir"
    # sekmet records every request and response body in its traffic log unless told
    # not to; its own docs say to turn that off for load runs, as a production server
    # would not have it.
    settings = folder / "settings.yaml"
    settings.write_text("log_inbound: false\n", encoding="utf-8")
    env = {
        **os.environ,
        "SEKMET_BASE_URL": base_url,
        "SEKMET_DB": str(folder / "sekmet.db"),
        "SEKMET_CONFIG": str(settings),
    }
    process = subprocess.Popen(
        [SEKMET, "serve", "--host", "127.0.0.1", "--port", str(port)],
        cwd=folder,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{base_url}/metadata", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline or process.poll() is not None:
            raise SystemExit("sekmet did not start")
        time.sleep(0.3)
    print(f"seeding {patients} patients into sekmet ...", flush=True)
    subprocess.run(
        [SEKMET, "seed", "--count", str(patients)],
        cwd=folder,
        env=env,
        check=True,
        capture_output=True,
    )
    return process, base_url


def start_latency_peer(
    folder: Path, patients: int, latency: float
) -> tuple[subprocess.Popen[bytes], str]:
    """The latency-bound peer in its own process, answering after `latency` seconds."""
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            str(Path(__file__).with_name("latency_peer.py")),
            "--patients",
            str(patients),
            "--latency-ms",
            str(latency * 1000),
            "--port",
            str(port),
        ],
        cwd=folder,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert process.stdout is not None
    if not process.stdout.readline().startswith(b"ready"):
        raise SystemExit("the latency peer did not start")
    return process, f"http://127.0.0.1:{port}/fhir"


@dataclass(frozen=True, slots=True)
class Run:
    resources: int
    requests: int
    seconds: float
    server_cpu: float
    # CPU this process (every thread of it) spent on the contender.
    client_cpu: float


@dataclass(frozen=True, slots=True)
class Result:
    peer: str
    latency: float
    baseline: Run
    ours: Run


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(
    server_pid: int, contender: Callable[[DelayTransport], Awaitable[int]], delay: float
) -> Run:
    transport = DelayTransport(delay)
    cpu_before = cpu_seconds(server_pid)
    client_before = time.process_time()
    started = time.perf_counter()
    resources = asyncio.run(contender(transport))
    seconds = time.perf_counter() - started
    return Run(
        resources,
        transport.requests,
        seconds,
        cpu_seconds(server_pid) - cpu_before,
        time.process_time() - client_before,
    )


def race(
    peer: str,
    server_pid: int,
    base_url: str,
    latency: float,
    client_delay: float,
    store: Path,
    args: argparse.Namespace,
) -> Result:
    """Both contenders against one server, the same latency for each."""
    print(f"{peer}, latency {latency:.0f} ms: sequential loop, then journey sync ...", flush=True)
    baseline = measure(
        server_pid,
        lambda transport: sequential_loop(base_url, args.page_size, transport),
        client_delay,
    )
    ours = measure(
        server_pid,
        partial(our_sync, base_url, args.page_size, args.concurrency, store),
        client_delay,
    )
    return Result(peer, latency, baseline, ours)


async def sequential_loop(base_url: str, page_size: int, transport: DelayTransport) -> int:
    count = 0
    async with httpx.AsyncClient(transport=transport, timeout=60) as client:
        for resource_type in TYPES:
            url: str | None = f"{base_url}/{resource_type}?_count={page_size}"
            while url:
                bundle = (await client.get(url)).json()
                count += sum(
                    1
                    for entry in bundle.get("entry", [])
                    if entry.get("resource", {}).get("resourceType") == resource_type
                )
                url = next(
                    (link["url"] for link in bundle.get("link", []) if link["relation"] == "next"),
                    None,
                )
    return count


async def our_sync(
    base_url: str,
    page_size: int,
    concurrency: int,
    store: Path | str,
    transport: DelayTransport,
    settings: Settings | None = None,
) -> int:
    """`journey sync` into `store`: a SQLite file, or a database URL."""
    engine = open_store(store if isinstance(store, str) else f"sqlite:///{store}")
    source = SourceConfig.model_validate(
        {
            "name": "bench",
            "kind": "provider",
            "base_url": base_url,
            "mode": "rest",
            "resource_types": list(TYPES),
            "page_size": page_size,
            "concurrency": concurrency,
        }
    )
    async with httpx.AsyncClient(transport=transport, timeout=60) as client:
        summary = await sync_source(
            engine, load_rule_pack(), settings or Settings(), source, client=client
        )
    engine.dispose()
    if summary.failed:
        raise SystemExit(f"sync failed: {summary.error or summary.types}")
    return sum(state.fetched for state in summary.types.values())


def postgres_runs(
    admin_url: str, base_url: str, server_pid: int, args: argparse.Namespace
) -> list[tuple[str, Run]]:
    """Ours into PostgreSQL, deriving in a process of its own and in the pull's process,
    alternating, each into a fresh database."""
    from scratch_postgres import fresh_postgres

    runs: list[tuple[str, Run]] = []
    for apart in (True, False, True, False):
        label = "into PostgreSQL, " + ("derive process" if apart else "derived in-process")
        print(f"latency peer: journey sync {label} ...", flush=True)
        with fresh_postgres(admin_url) as url:
            contender = partial(
                our_sync,
                base_url,
                args.page_size,
                args.concurrency,
                url,
                settings=Settings(derive_process=apart),
            )
            runs.append((label, measure(server_pid, contender, 0.0)))
    return runs


def ratio_cpu(result: Result) -> float:
    """The speed-up ours would have if its own CPU were all its time: the ceiling a
    CPU-bound client reaches on a core of its own, however quick the network."""
    return result.baseline.seconds / max(result.ours.client_cpu, 1e-9)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--patients", type=int, default=3000)
    parser.add_argument(
        "--latency-ms", default="50,100,200", help="per-request latencies to run, comma-separated"
    )
    parser.add_argument("--page-size", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=8, help="the source's concurrency")
    parser.add_argument(
        "--peers", default="latency,sekmet", help="servers to pull from: latency, sekmet or both"
    )
    parser.add_argument(
        "--postgres",
        default=os.environ.get(
            "JOURNEY_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
        ),
        help="PostgreSQL server's admin URL: at the first latency, the latency peer's pull "
        "also into PostgreSQL, with and without a derive process",
    )
    parser.add_argument("--no-postgres", action="store_true", help="skip the PostgreSQL runs")
    args = parser.parse_args()
    latencies = [float(value) for value in args.latency_ms.split(",")]
    peers = [name.strip() for name in args.peers.split(",")]
    results: list[Result] = []
    on_postgres: list[tuple[str, Run]] = []
    with tempfile.TemporaryDirectory(prefix="journey-pull-bench-") as name:
        folder = Path(name)
        if "latency" in peers:
            # Latency injected by the peer itself (an asyncio sleep before each answer).
            for number, latency in enumerate(latencies):
                process, base_url = start_latency_peer(folder, args.patients, latency / 1000)
                try:
                    store = folder / f"latency-{number}.db"
                    results.append(
                        race("latency peer", process.pid, base_url, latency, 0.0, store, args)
                    )
                    if number == 0 and not args.no_postgres:
                        on_postgres = postgres_runs(args.postgres, base_url, process.pid, args)
                finally:
                    process.terminate()
                    process.wait(timeout=20)
        if "sekmet" in peers:
            # sekmet has no latency of its own: the client-side DelayTransport adds it.
            process, base_url = start_server(folder, args.patients)
            try:
                for number, latency in enumerate(latencies):
                    store = folder / f"sekmet-{number}.db"
                    results.append(
                        race("sekmet", process.pid, base_url, latency, latency / 1000, store, args)
                    )
            finally:
                process.terminate()
                process.wait(timeout=20)
    print(
        f"\npage size {args.page_size}, types {', '.join(TYPES)}, source concurrency "
        f"{args.concurrency}, {args.patients} patients; both servers on loopback, same 2 cores; "
        "latency: the latency peer sleeps before each answer, sekmet's is added client-side"
    )
    print(
        f"{'peer':<13} {'latency':>7} {'contender':<40} {'resources':>9} {'requests':>8} "
        f"{'time':>8} {'server CPU':>10} {'share':>6} {'our CPU':>8}"
    )
    for result in results:
        rows = (
            ("sequential next-link loop (fetch only)", result.baseline),
            ("journey sync (fetch+validate+store+map)", result.ours),
        )
        for label, run in rows:
            print(
                f"{result.peer:<13} {result.latency:>5.0f}ms {label:<40} {run.resources:>9} "
                f"{run.requests:>8} {run.seconds:>7.2f}s {run.server_cpu:>9.2f}s "
                f"{run.server_cpu / run.seconds:>6.0%} {run.client_cpu:>7.2f}s"
            )
        ratio = result.baseline.seconds / result.ours.seconds
        verdict = "met" if ratio >= 4 else "NOT met"
        print(
            f"{'':<21} speed-up ours / sequential: {ratio:.2f}x (target >= 4x: {verdict}); "
            f"the server's CPU was {result.ours.server_cpu / result.ours.seconds:.0%} of our "
            f"time; ours used {result.ours.client_cpu:.2f}s of CPU, so {ratio_cpu(result):.2f}x "
            "is the most it could be with that CPU and no waiting"
        )
        if result.ours.resources != result.baseline.resources:
            print(f"{'':<21} WARNING: the two fetched different numbers of resources")
    if on_postgres:
        baseline = next(r for r in results if r.peer == "latency peer").baseline
        print(f"\nlatency peer, {latencies[0]:.0f} ms, journey sync into PostgreSQL (alternating):")
        for label, run in on_postgres:
            print(
                f"  {label:<40} {run.resources:>9} {run.seconds:>7.2f}s "
                f"our CPU {run.client_cpu:>5.2f}s  {baseline.seconds / run.seconds:.2f}x "
                "the sequential loop"
            )


if __name__ == "__main__":
    main()
