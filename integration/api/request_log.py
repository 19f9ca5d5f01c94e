"""One log line per request: method, path, status, time. Never the query string
or the body, which can carry identifiers and clinical data."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request
from starlette.responses import Response

log = logging.getLogger("journey.api")


def install_request_log(app: FastAPI) -> None:
    @app.middleware("http")
    async def request_log(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        started = time.perf_counter()
        response = await call_next(request)
        elapsed = (time.perf_counter() - started) * 1000
        log.info("%s %s %d %.1fms", request.method, request.url.path, response.status_code, elapsed)
        return response
