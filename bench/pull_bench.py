"""Pull benchmark: `journey sync` against a plain sequential next-link loop, in one run.

Starts a real FHIR server (sekmet-fhir) on loopback, seeds it, and adds the
same per-request latency to both contenders with a client-side transport (as
a network between them would). Then, for each latency, fetching the same
resource types:

  1. baseline: one request at a time, following Bundle.link[next], resources
     only counted (no validation, no storage);
  2. ours: `sync_source` into a fresh SQLite store (validate, store, map).

Prints both times, the resource counts (they must match), the ratio, the
requests each made and the CPU the server spent answering them. The server
shares this machine's two cores and answers in one process, so its CPU time
is a floor under any client's time: where ours is close to it, the server,
not the client, is what limits the speed-up.
Target for issue 3: ours >= 4x faster than the baseline.

    scripts/bench-pull --patients 3000 --latency-ms 50,100,200
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


@dataclass(frozen=True, slots=True)
class Run:
    resources: int
    requests: int
    seconds: float
    server_cpu: float


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(
    server_pid: int, contender: Callable[[DelayTransport], Awaitable[int]], delay: float
) -> Run:
    transport = DelayTransport(delay)
    cpu_before = cpu_seconds(server_pid)
    started = time.perf_counter()
    resources = asyncio.run(contender(transport))
    seconds = time.perf_counter() - started
    return Run(resources, transport.requests, seconds, cpu_seconds(server_pid) - cpu_before)


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
    base_url: str, page_size: int, concurrency: int, store: Path, transport: DelayTransport
) -> int:
    engine = open_store(f"sqlite:///{store}")
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
        summary = await sync_source(engine, load_rule_pack(), Settings(), source, client=client)
    engine.dispose()
    if summary.failed:
        raise SystemExit(f"sync failed: {summary.error or summary.types}")
    return sum(state.fetched for state in summary.types.values())


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
    args = parser.parse_args()
    latencies = [float(value) for value in args.latency_ms.split(",")]
    results: list[tuple[float, Run, Run]] = []
    with tempfile.TemporaryDirectory(prefix="journey-pull-bench-") as name:
        folder = Path(name)
        process, base_url = start_server(folder, args.patients)
        try:
            for number, latency in enumerate(latencies):
                delay = latency / 1000
                print(
                    f"latency {latency:.0f} ms: sequential loop, then journey sync ...", flush=True
                )
                baseline = measure(
                    process.pid,
                    lambda transport: sequential_loop(base_url, args.page_size, transport),
                    delay,
                )
                store = folder / f"bench-{number}.db"
                ours = measure(
                    process.pid,
                    partial(our_sync, base_url, args.page_size, args.concurrency, store),
                    delay,
                )
                results.append((latency, baseline, ours))
        finally:
            process.terminate()
            process.wait(timeout=20)
    print(
        f"\npage size {args.page_size}, types {', '.join(TYPES)}, source concurrency "
        f"{args.concurrency}, server: sekmet-fhir on loopback, same 2 cores"
    )
    print(
        f"{'latency':>8} {'contender':<40} {'resources':>9} {'requests':>8} {'time':>8} "
        f"{'server CPU':>10}"
    )
    for latency, baseline, ours in results:
        rows = (
            ("sequential next-link loop (fetch only)", baseline),
            ("journey sync (fetch+validate+store+map)", ours),
        )
        for label, run in rows:
            print(
                f"{latency:>6.0f}ms {label:<40} {run.resources:>9} {run.requests:>8} "
                f"{run.seconds:>7.2f}s {run.server_cpu:>9.2f}s"
            )
        verdict = "met" if baseline.seconds / ours.seconds >= 4 else "NOT met"
        print(
            f"{'':>8} speed-up ours / sequential: {baseline.seconds / ours.seconds:.2f}x "
            f"(target >= 4x: {verdict}); the server alone spent {ours.server_cpu:.2f}s of CPU "
            f"answering ours, {ours.server_cpu / ours.seconds:.0%} of our time"
        )
        if ours.resources != baseline.resources:
            print(f"{'':>8} WARNING: the two fetched different numbers of resources")


if __name__ == "__main__":
    main()
