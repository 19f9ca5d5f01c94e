"""Webhooks in tests: a receiver, a FastAPI app on a loopback port (uvicorn in a
thread) that verifies every delivery's signature with the standardwebhooks library
as a downstream app would and records what it took; and the deliverer run beside
it, as `journey worker` runs it.

Each path is an endpoint with its own behaviour: `good` takes everything, `failing`
answers 500, `slow` answers after `slow_seconds`, `sluggish` after 0.1 s; a test
changes an endpoint's `mode` while it runs."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import orjson
import uvicorn
from fastapi import FastAPI, Request, Response
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from integration.config import Settings
from integration.webhooks.delivery import WebhookDeliverer
from tests.servers import free_port

API_KEY = "test-key"


@dataclass
class Delivery:
    webhook_id: str
    body: dict[str, Any]
    received_at: float
    signatures: int


@dataclass
class Endpoint:
    mode: str = "good"
    # A FHIR rest-hook endpoint checks a header (its credential), not a signature.
    fhir_header: tuple[str, str] | None = None
    secrets: list[str] = field(default_factory=list)
    taken: list[Delivery] = field(default_factory=list)
    refused: int = 0
    bad_signatures: int = 0


class Receiver:
    def __init__(self, slow_seconds: float = 3.0) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.slow_seconds = slow_seconds
        self.endpoints: dict[str, Endpoint] = {}
        self._lock = threading.Lock()
        app = FastAPI()

        @app.post("/{path}")
        async def receive(path: str, request: Request) -> Response:
            endpoint = self.endpoints.setdefault(path, Endpoint())
            body = (await request.body()).decode()
            if endpoint.fhir_header is not None:
                name, value = endpoint.fhir_header
                if request.headers.get(name) != value:
                    endpoint.bad_signatures += 1
                    return Response(status_code=401)
            else:
                try:
                    # Every configured secret must verify on its own: during a rotation a
                    # receiver holding either one accepts the delivery.
                    for secret in endpoint.secrets or ["missing"]:
                        Webhook(secret).verify(body, dict(request.headers))
                except (WebhookVerificationError, ValueError):
                    endpoint.bad_signatures += 1
                    return Response(status_code=401)
            if endpoint.mode == "failing":
                endpoint.refused += 1
                return Response(status_code=500)
            if endpoint.mode == "slow":
                await asyncio.sleep(self.slow_seconds)
            if endpoint.mode == "sluggish":  # slow, but within the deliverer's timeout
                await asyncio.sleep(0.1)
            with self._lock:
                endpoint.taken.append(
                    Delivery(
                        request.headers.get("webhook-id", ""),
                        orjson.loads(body),
                        time.monotonic(),
                        len(request.headers.get("webhook-signature", "").split()),
                    )
                )
            return Response(status_code=204)

        self._server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="error")
        )
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    def endpoint(
        self, path: str, mode: str = "good", fhir_header: tuple[str, str] | None = None
    ) -> str:
        """Make `path` an endpoint in `mode`; returns its URL."""
        self.endpoints[path] = Endpoint(mode=mode, fhir_header=fhir_header)
        return f"{self.url}/{path}"

    def trust(self, path: str, *secrets: str) -> None:
        self.endpoints[path].secrets = list(secrets)

    def ids(self, path: str) -> list[str]:
        return [d.webhook_id for d in self.endpoints[path].taken]

    def wait_for(self, done: Callable[[], bool], seconds: float = 30) -> None:
        deadline = time.monotonic() + seconds
        while not done():
            assert time.monotonic() < deadline, "the receiver did not get what was expected"
            time.sleep(0.05)

    @contextmanager
    def running(self) -> Iterator[Receiver]:
        self._thread.start()
        while not self._server.started:
            time.sleep(0.02)
        try:
            yield self
        finally:
            self._server.should_exit = True
            self._thread.join(timeout=10)


def quick_settings(engine: Engine, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "api_keys": [API_KEY],
        "database_url": str(engine.url),
        "webhook_timeout_seconds": 0.5,
        "webhook_first_retry_seconds": 0.2,
        "webhook_max_retry_seconds": 0.5,
        "webhook_poll_seconds": 0.05,
        "worker_lease_seconds": 6,
        **overrides,
    }
    return Settings(**values)


@contextmanager
def delivering(engine: Engine, settings: Settings, owner: str = "test-worker") -> Iterator[None]:
    """A deliverer working in the background, as `journey worker` runs it."""
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    deliverer = WebhookDeliverer(engine, settings, owner)

    def run() -> None:
        loop.run_until_complete(deliverer.run(stop))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(timeout=30)
        loop.close()


def subscribe(
    client: TestClient,
    receiver: Receiver,
    path: str,
    mode: str = "good",
    key: str = API_KEY,
    **body: Any,
) -> str:
    """Subscribe the receiver's endpoint `path` through the API (with the quick settings'
    key unless given) and trust its secret; returns the subscription id."""
    answer = client.post(
        "/subscriptions",
        headers={"Authorization": f"Bearer {key}"},
        json={"url": receiver.endpoint(path, mode), **body},
    )
    assert answer.status_code == 201, answer.text
    made = answer.json()
    assert made["secret"].startswith("whsec_")
    receiver.trust(path, made["secret"])
    return str(made["id"])
