"""Whether this process is answering requests, for the background upkeep: while it is,
the upkeep takes only its share of the time (see journey/upkeep.py), so a backlog of
episodes after a large import does not slow every read beside it.

A plain ASGI middleware, as the request log is (see request_log.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# A request that ended this recently still counts: clients send their next one a few
# milliseconds later, and the gap between two must not read as an idle server.
RECENT_SECONDS = 1.0


class RequestActivity:
    """Requests in flight and when the last one ended. Written by the event loop, read
    from the upkeep's thread: one int and one float, each read whole."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.in_flight = 0
        self._last_ended = float("-inf")

    def started(self) -> None:
        self.in_flight += 1

    def ended(self) -> None:
        self.in_flight -= 1
        self._last_ended = self._clock()

    def busy(self) -> bool:
        return self.in_flight > 0 or self._clock() - self._last_ended < RECENT_SECONDS


class CountRequests:
    def __init__(self, app: ASGIApp, activity: RequestActivity) -> None:
        self.app = app
        self.activity = activity

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        self.activity.started()
        ended = False

        async def send_watching(message: Message) -> None:
            nonlocal ended
            # An event stream (/feed/stream) stays open for hours: it counts as answered
            # once it starts, or it would keep the upkeep resting for as long.
            if message["type"] == "http.response.start" and _is_stream(message):
                ended = True
                self.activity.ended()
            await send(message)

        try:
            await self.app(scope, receive, send_watching)
        finally:
            if not ended:
                self.activity.ended()


def _is_stream(start: Message) -> bool:
    return any(
        name.lower() == b"content-type" and value.startswith(b"text/event-stream")
        for name, value in start.get("headers") or []
    )


def install_request_activity(
    app: FastAPI, activity: RequestActivity | None = None
) -> RequestActivity:
    activity = activity or RequestActivity()
    app.add_middleware(CountRequests, activity=activity)
    return activity
