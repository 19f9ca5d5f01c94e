"""Webhook benchmark: push to /fhir, webhook received, end to end, in one run.

Starts a webhook receiver (FastAPI on loopback, verifying each signature with the
standardwebhooks library), `journey serve` and `journey worker` on a fresh store
(SQLite unless --database-url), subscribed to `record.added` with full payloads.

1. Latency: one Encounter at a time is PUT to /fhir every `--gap` seconds; for each,
   the time from sending the push to the receiver holding its event. Printed as p50,
   p99 and max beside the push's own round trip in the same run (goal: p99 < 1 s).
2. Throughput: a transaction Bundle of `--backlog` Encounters, then the time until
   the receiver holds all their events: events/s delivered to one endpoint, against
   the same number of signed POSTs sent straight to the receiver by one client.

    scripts/bench-webhooks --pushes 300 --backlog 2000
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import uvicorn
from fastapi import FastAPI, Request, Response
from standardwebhooks.webhooks import Webhook

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from integration.webhooks.signing import new_secret  # noqa: E402

JOURNEY = str(Path(sys.executable).parent / "journey")
PUSH_KEY = "bench-push-key"
PUSH = {"Authorization": f"Bearer {PUSH_KEY}", "Content-Type": "application/fhir+json"}


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Receiver:
    """Records when each Encounter's event arrived, after verifying its signature."""

    def __init__(self, secret: str) -> None:
        self.port = free_port()
        self.secret = secret
        self.arrived: dict[str, float] = {}
        self.bad = 0
        webhook = Webhook(secret)
        app = FastAPI()

        @app.post("/hook")
        async def hook(request: Request) -> Response:
            body = (await request.body()).decode()
            try:
                message = webhook.verify(body, dict(request.headers))
            except Exception:
                self.bad += 1
                return Response(status_code=401)
            payload = message["data"].get("payload") or {}
            resource = payload.get("resource_id")
            if resource is not None:
                self.arrived.setdefault(resource, time.monotonic())
            return Response(status_code=204)

        @app.post("/bare")
        async def bare(request: Request) -> Response:
            webhook.verify((await request.body()).decode(), dict(request.headers))
            return Response(status_code=204)

        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="error")
        )
        threading.Thread(target=self.server.run, daemon=True).start()
        while not self.server.started:
            time.sleep(0.02)


def start(command: list[str], env: dict[str, str], folder: Path) -> subprocess.Popen[bytes]:
    with (folder / f"{command[0]}.log").open("ab") as log:
        return subprocess.Popen(
            [JOURNEY, *command], env=env, cwd=folder, stdout=log, stderr=subprocess.STDOUT
        )


def encounter(n: int) -> dict[str, Any]:
    return {
        "resourceType": "Encounter",
        "id": f"bench-e{n}",
        "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        "subject": {"reference": "Patient/bench-p0"},
        "period": {"start": "2026-03-01T10:00:00Z", "end": "2026-03-01T10:30:00Z"},
        "reasonCode": [
            {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "I10"}]}
        ],
    }


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def wait_for(done: Any, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not done():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.01)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pushes", type=int, default=300, help="single pushes timed")
    parser.add_argument("--gap", type=float, default=0.05, help="seconds between pushes")
    parser.add_argument("--backlog", type=int, default=2000, help="Encounters in the backlog")
    parser.add_argument("--database-url", default=None, help="store URL (default: SQLite)")
    args = parser.parse_args()

    secret = new_secret()
    receiver = Receiver(secret)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        config = folder / "journey.toml"
        config.write_text(
            '[[push_clients]]\nsource = "bench-ehr"\nkey_env = "BENCH_PUSH_KEY"\n\n'
            "[[subscriptions]]\n"
            f'name = "bench"\nurl = "http://127.0.0.1:{receiver.port}/hook"\n'
            'types = ["record.added"]\npayload = "full"\nsecret_env = "BENCH_SECRET"\n',
            encoding="utf-8",
        )
        port = free_port()
        env = {
            **os.environ,
            "JOURNEY_CONFIG": str(config),
            "JOURNEY_DATABASE_URL": args.database_url or f"sqlite:///{folder / 'journey.db'}",
            "JOURNEY_API_KEYS": "bench-read-key",
            # A benchmark measures the server, not its rate limit.
            "JOURNEY_RATE_LIMIT_PER_MINUTE": "0",
            "BENCH_PUSH_KEY": PUSH_KEY,
            "BENCH_SECRET": secret,
        }
        api = start(["serve", "--port", str(port)], env, folder)
        base = f"http://127.0.0.1:{port}"
        wait_for(lambda: _up(f"{base}/healthz"), 60, "journey serve")
        worker = start(["worker"], env, folder)
        try:
            run(args, base, receiver)
        finally:
            for process in (worker, api):
                process.terminate()
                process.wait(timeout=30)


def _up(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def run(args: argparse.Namespace, base: str, receiver: Receiver) -> None:
    with httpx.Client(timeout=60) as client:
        patient = {"resourceType": "Patient", "id": "bench-p0", "birthDate": "1970-01-01"}
        client.put(f"{base}/fhir/Patient/bench-p0", content=orjson.dumps(patient), headers=PUSH)
        # The worker picks the subscription up within its first claim round.
        warm = encounter(-1)
        client.put(f"{base}/fhir/Encounter/{warm['id']}", content=orjson.dumps(warm), headers=PUSH)
        wait_for(lambda: warm["id"] in receiver.arrived, 60, "the first delivery")

        round_trips: list[float] = []
        latencies: list[float] = []
        for n in range(args.pushes):
            resource = encounter(n)
            sent = time.monotonic()
            answer = client.put(
                f"{base}/fhir/Encounter/{resource['id']}",
                content=orjson.dumps(resource),
                headers=PUSH,
            )
            round_trips.append(time.monotonic() - sent)
            assert answer.status_code == 201, answer.text
            wait_for(lambda rid=resource["id"]: rid in receiver.arrived, 30, resource["id"])
            latencies.append(receiver.arrived[resource["id"]] - sent)
            time.sleep(args.gap)

        first = args.pushes + 1
        entries = [
            {"resource": encounter(n), "request": {"method": "PUT", "url": f"Encounter/bench-e{n}"}}
            for n in range(first, first + args.backlog)
        ]
        bundle = {"resourceType": "Bundle", "type": "transaction", "entry": entries}
        answer = client.post(f"{base}/fhir", content=orjson.dumps(bundle), headers=PUSH)
        assert answer.status_code == 200, answer.text
        backlog = [f"bench-e{n}" for n in range(first, first + args.backlog)]
        wait_for(lambda: all(r in receiver.arrived for r in backlog), 600, "the backlog")
        # From the first of the backlog to arrive to the last (a Bundle's events are
        # committed, and may start going out, before its answer is back).
        arrivals = [receiver.arrived[r] for r in backlog]
        delivered = (args.backlog - 1) / (max(arrivals) - min(arrivals))

        # The bare rate: the same number of signed POSTs from another process (as the
        # worker is), one at a time, straight to the receiver.
        bare = bare_rate(f"http://127.0.0.1:{receiver.port}/bare", receiver.secret, args.backlog)

    ms = 1000
    print(f"webhooks: {args.pushes} single pushes, {args.gap * ms:.0f} ms apart")
    print(f"  {'':<28} {'p50':>9} {'p99':>9} {'max':>9}")
    for label, values in (
        ("push round trip", round_trips),
        ("push to webhook received", latencies),
    ):
        p50, p99 = percentile(values, 0.5) * ms, percentile(values, 0.99) * ms
        print(f"  {label:<28} {p50:>7.1f}ms {p99:>7.1f}ms {max(values) * ms:>7.1f}ms")
    p99 = percentile(latencies, 0.99)
    verdict = "met" if p99 < 1 else "NOT met"
    print(
        f"  push to webhook p99 / push round trip p99: {p99 / percentile(round_trips, 0.99):.1f}x"
    )
    print(f"  goal p99 < 1 s: {verdict} (mean {statistics.mean(latencies) * ms:.1f} ms)")
    print(
        f"  backlog of {args.backlog:,}: {delivered:,.0f} events/s delivered to one endpoint; "
        f"bare signed POSTs {bare:,.0f}/s; ratio {delivered / bare:.0%}"
    )
    print(f"  signatures the receiver refused: {receiver.bad}")


BARE_CLIENT = """
import asyncio, sys, time
from datetime import UTC, datetime
import httpx, orjson
from integration.webhooks.signing import signed_headers
url, secret, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
async def main():
    async with httpx.AsyncClient(timeout=60) as client:
        started = time.monotonic()
        for n in range(count):
            body = orjson.dumps({"type": "record.added", "data": {"n": n}}).decode()
            headers = signed_headers(f"evt_{n}", body, [secret], datetime.now(UTC))
            assert (await client.post(url, content=body, headers=headers)).status_code == 204
        print(count / (time.monotonic() - started))
asyncio.run(main())
"""


def bare_rate(url: str, secret: str, count: int) -> float:
    done = subprocess.run(
        [sys.executable, "-c", BARE_CLIENT, url, secret, str(count)],
        capture_output=True,
        text=True,
        check=True,
        cwd=HERE.parent,
    )
    return float(done.stdout.strip())


if __name__ == "__main__":
    main()
