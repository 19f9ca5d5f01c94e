"""One log line per request: method, path, status, time. Never the query string
or the body, which can carry identifiers and clinical data.

A plain ASGI middleware, not `@app.middleware("http")`: Starlette's
BaseHTTPMiddleware runs every response through an extra task and stream,
which cost a journey read more than the log line itself.
"""

from __future__ import annotations

import logging
import time

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("journey.api")


class RequestLog:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_noting_status)
        finally:
            elapsed = (time.perf_counter() - started) * 1000
            log.info("%s %s %d %.1fms", scope["method"], scope["path"], status, elapsed)


def install_request_log(app: FastAPI) -> None:
    app.add_middleware(RequestLog)
