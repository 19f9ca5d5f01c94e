"""A time limit on reads: a GET that has not started its answer after
`request_time_limit_seconds` is answered 503 with Retry-After (an OperationOutcome on
/fhir, problem JSON elsewhere), so no client waits on a read without end.

Writes are not cut: the store may already be committing what they carry, and an
answer while it still runs would be wrong either way. Nor are answers already under
way (the feed's event stream, a large page being sent): the limit covers the wait
for an answer, not its length.
"""

from __future__ import annotations

import asyncio
import logging
from asyncio import FIRST_COMPLETED

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from integration.api.problems import is_fhir, outcome_response, problem_response

log = logging.getLogger("journey.api")
RETRY_AFTER_SECONDS = 5
READS = ("GET", "HEAD")


class TimeLimit:
    def __init__(self, app: ASGIApp, seconds: float) -> None:
        self.app = app
        self.seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.seconds <= 0 or scope["method"] not in READS:
            await self.app(scope, receive, send)
            return
        answering = asyncio.Event()
        cut = False

        async def send_unless_cut(message: Message) -> None:
            if cut:
                return  # answered 503 already: what the abandoned read sends is dropped
            if message["type"] == "http.response.start":
                answering.set()
            await send(message)

        # In a task of its own: a route running in a thread cannot be cancelled until
        # the thread returns, and the client is not to wait for that.
        async def answer() -> None:
            await self.app(scope, receive, send_unless_cut)

        work: asyncio.Task[None] = asyncio.create_task(answer())
        waiting = asyncio.create_task(answering.wait())
        await asyncio.wait({work, waiting}, timeout=self.seconds, return_when=FIRST_COMPLETED)
        waiting.cancel()
        if work.done() or answering.is_set():
            await work
            return
        cut = True
        work.cancel()
        work.add_done_callback(_ended)
        log.warning(
            "%s %s: past the time limit of %g s", scope["method"], scope["path"], self.seconds
        )
        await self._too_long(scope, receive, send)

    async def _too_long(self, scope: Scope, receive: Receive, send: Send) -> None:
        detail = f"the request took longer than this server's time limit of {self.seconds:g} s"
        headers = {"Retry-After": str(RETRY_AFTER_SECONDS)}
        request = Request(scope)
        response: Response
        if is_fhir(request.url.path):
            response = outcome_response(503, "timeout", detail, headers)
        else:
            response = problem_response(request, 503, "Service Unavailable", detail, headers)
        await response(scope, receive, send)


def _ended(work: asyncio.Task[None]) -> None:
    """An abandoned read's end: its error, if any, logged by type (never its message)."""
    if not work.cancelled() and work.exception() is not None:
        log.warning("an abandoned read ended with %s", type(work.exception()).__name__)
