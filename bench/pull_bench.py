"""Pull benchmark: `journey sync` against a plain sequential next-link loop, in one run.

Starts a real FHIR server (sekmet-fhir) on loopback, seeds it, and adds the
same per-request latency to both contenders with a client-side transport (as
a network between them would). Then, fetching the same resource types:

  1. baseline: one request at a time, following Bundle.link[next], resources
     only counted (no validation, no storage);
  2. ours: `sync_source` into a fresh SQLite store (validate, store, map).

Prints both times, the resource counts (they must match) and the ratio.
Target for issue 3: ours >= 4x faster than the baseline.

    scripts/bench-pull --patients 300 --latency-ms 50
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
from pathlib import Path

import httpx

from integration.config import Settings
from integration.sources import SourceConfig
from integration.store.engine import open_store
from integration.sync import sync_source
from mappings.rulepack import load_rule_pack

SEKMET = str(Path(sys.executable).parent / "sekmet")
TYPES = ("Patient", "Encounter")


class DelayTransport(httpx.AsyncBaseTransport):
    """Adds a fixed latency to every request, like a network hop would."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.inner = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
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
    env = {**os.environ, "SEKMET_BASE_URL": base_url, "SEKMET_DB": str(folder / "sekmet.db")}
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


async def sequential_loop(base_url: str, page_size: int, delay: float) -> int:
    count = 0
    async with httpx.AsyncClient(transport=DelayTransport(delay), timeout=60) as client:
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


async def our_sync(base_url: str, page_size: int, delay: float, folder: Path) -> int:
    engine = open_store(f"sqlite:///{folder / 'bench.db'}")
    source = SourceConfig.model_validate(
        {
            "name": "bench",
            "kind": "provider",
            "base_url": base_url,
            "mode": "rest",
            "resource_types": list(TYPES),
            "page_size": page_size,
        }
    )
    async with httpx.AsyncClient(transport=DelayTransport(delay), timeout=60) as client:
        summary = await sync_source(engine, load_rule_pack(), Settings(), source, client=client)
    engine.dispose()
    if summary.failed:
        raise SystemExit(f"sync failed: {summary.error or summary.types}")
    return sum(state.fetched for state in summary.types.values())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--patients", type=int, default=300)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--page-size", type=int, default=20)
    args = parser.parse_args()
    delay = args.latency_ms / 1000
    with tempfile.TemporaryDirectory(prefix="journey-pull-bench-") as name:
        folder = Path(name)
        process, base_url = start_server(folder, args.patients)
        try:
            started = time.perf_counter()
            baseline_count = asyncio.run(sequential_loop(base_url, args.page_size, delay))
            baseline = time.perf_counter() - started
            started = time.perf_counter()
            ours_count = asyncio.run(our_sync(base_url, args.page_size, delay, folder))
            ours = time.perf_counter() - started
        finally:
            process.terminate()
            process.wait(timeout=20)
    types = ", ".join(TYPES)
    print(
        f"latency {args.latency_ms:.0f} ms per request, page size {args.page_size}, types {types}"
    )
    rows = [
        ("sequential next-link loop (fetch only)", baseline_count, baseline),
        ("journey sync (fetch+validate+store+map)", ours_count, ours),
    ]
    for label, count, seconds in rows:
        print(f"  {label:<42} {count:>6} resources  {seconds:6.2f} s")
    print(f"  {'speed-up ours / sequential':<42} {baseline / ours:6.2f}x   (target: >= 4x)")
    if ours_count != baseline_count:
        print("  WARNING: the two fetched different numbers of resources")


if __name__ == "__main__":
    main()
