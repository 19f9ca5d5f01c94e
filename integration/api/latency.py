"""Request latency by route template, for /metrics: this process's own requests.

The route label is the template the request matched (`/people/{person_id}`), never
the path, which carries person and resource ids; a request that matched no route
is `unmatched`. Timed to the start of the answer: a streamed answer (the feed's
event stream) is open for hours, and its length says nothing about how fast the
service answered. It counts the requests being answered too, for the background
upkeep (activity.py).

A plain ASGI middleware, as the request log is (see request_log.py).
"""

from __future__ import annotations

import time

from fastapi import FastAPI
from prometheus_client import CollectorRegistry, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from integration.api.activity import RequestActivity

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED = "unmatched"
# Prometheus' defaults, then the read time limit's neighbourhood (30 s by default).
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 10, 30, 60)


def latency_histogram(registry: CollectorRegistry) -> Histogram:
    return Histogram(
        "journey_http_request_duration_seconds",
        "Seconds from a request's arrival to the start of its answer, by method, route "
        "template and status; counted by this API process only (each process has its "
        "own: sum them across processes)",
        ["method", "route", "status"],
        registry=registry,
        buckets=BUCKETS,
    )


def route_template(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else UNMATCHED


class RequestLatency:
    def __init__(self, app: ASGIApp, histogram: Histogram, activity: RequestActivity) -> None:
        self.app = app
        self.histogram = histogram
        self.activity = activity

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        observed = False
        self.activity.started()

        def observe(status: int) -> None:
            nonlocal observed
            observed = True
            self.activity.ended()
            # Any word is a method to HTTP: only the known ones become label values.
            method = scope["method"] if scope["method"] in METHODS else "other"
            self.histogram.labels(method, route_template(scope), str(status)).observe(
                time.perf_counter() - started
            )

        async def send_timing(message: Message) -> None:
            if message["type"] == "http.response.start" and not observed:
                observe(int(message["status"]))
            await send(message)

        try:
            await self.app(scope, receive, send_timing)
        finally:
            if not observed:  # no answer at all: the server failed
                observe(500)


def install_request_latency(
    app: FastAPI, registry: CollectorRegistry, activity: RequestActivity | None = None
) -> RequestActivity:
    """Time every request; returns the activity it counts (see activity.py)."""
    activity = activity or RequestActivity()
    app.add_middleware(RequestLatency, histogram=latency_histogram(registry), activity=activity)
    return activity
