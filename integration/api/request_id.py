"""Every request gets an id, answered in its X-Request-ID header: log lines written
while it is answered carry it (in JSON logs), as do its audit row and, for a 500,
the correlation id the client is shown.

Our own, never the client's: a client-chosen header would let anyone write what
they like into the logs and the audit trail, or reuse another request's id.

A plain ASGI middleware, as the request log is (see request_log.py).
"""

from __future__ import annotations

import uuid

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from integration.logs import request_id

HEADER = b"x-request-id"


class RequestId:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = uuid.uuid4().hex
        # Where the middlewares inside read it (the audit trail notes it from here).
        scope.setdefault("state", {})["request_id"] = rid

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers") or [])
                if not any(name.lower() == HEADER for name, _ in headers):
                    headers.append((HEADER, rid.encode()))
                message = {**message, "headers": headers}
            await send(message)

        token = request_id.set(rid)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            request_id.reset(token)


def install_request_id(app: FastAPI) -> None:
    app.add_middleware(RequestId)
