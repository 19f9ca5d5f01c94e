"""One log line per request: method, path, status, time. Never the query string
or the body, which can carry identifiers and clinical data.

With JSON logs the line names the route template (`/people/{person_id}`) instead of
the path, whose ids it would otherwise carry into a log collector, and holds the
request id (to find the request's audit row, which has the path), method, route,
status and duration as fields of their own.

A plain ASGI middleware, not `@app.middleware("http")`: Starlette's
BaseHTTPMiddleware runs every response through an extra task and stream,
which cost a journey read more than the log line itself.
"""

from __future__ import annotations

import logging
import time

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from integration.api.latency import route_template
from integration.api.request_id import HEADER

log = logging.getLogger("journey.api")


class RequestLog:
    def __init__(self, app: ASGIApp, templated: bool = False) -> None:
        self.app = app
        self.templated = templated

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        request_id = None

        async def send_noting_status(message: Message) -> None:
            nonlocal status, request_id
            if message["type"] == "http.response.start":
                status = message["status"]
                request_id = dict(message.get("headers") or []).get(HEADER)
            await send(message)

        try:
            await self.app(scope, receive, send_noting_status)
        finally:
            elapsed = (time.perf_counter() - started) * 1000
            route = route_template(scope)
            log.info(
                "%s %s %d %.1fms",
                scope["method"],
                route if self.templated else scope["path"],
                status,
                elapsed,
                # Outside the request id's context by now: it is taken from the answer.
                extra={
                    "request_id": request_id.decode() if request_id else None,
                    "method": scope["method"],
                    "route": route,
                    "status": status,
                    "duration_ms": round(elapsed, 1),
                },
            )


def install_request_log(app: FastAPI) -> None:
    templated = app.state.settings.log_format == "json"
    app.add_middleware(RequestLog, templated=templated)
