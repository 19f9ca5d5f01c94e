"""The last line: an exception no handler expected becomes a 500 the client can quote.

On /fhir the answer is an OperationOutcome, elsewhere a problem document; both
carry a correlation id, also in the X-Request-ID header, and one log line
holds that id with the method, path, exception type and traceback. Not the
exception's message: a message (and so Python's own traceback text) can quote
what the request carried, a name or a birth date. Frames are code, not data.

A plain ASGI middleware between Starlette's ServerErrorMiddleware and the
routes: ServerErrorMiddleware answers plain text and re-raises, and uvicorn
then logs the exception with its message.
"""

from __future__ import annotations

import logging
import uuid

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from integration.api.problems import is_fhir, problem_response
from integration.api.responses import FhirResponse
from integration.logs import exception_trail, request_id
from integration.push.errors import FhirError
from integration.store.errors import describe_store_error, store_unavailable

log = logging.getLogger("journey.api")
REQUEST_ID_HEADER = "X-Request-ID"
RETRY_AFTER_SECONDS = 5


class ErrorBoundary:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_noting_start(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, send_noting_start)
        except Exception as exc:
            if store_unavailable(exc) and not started:
                await self._store_unavailable(exc, scope, receive, send)
                return
            # The request's own id, so the log line, the answer and the audit row agree.
            correlation_id = request_id.get() or uuid.uuid4().hex
            kind = type(exc)
            log.error(
                "%s %s failed: %s.%s, correlation id %s\n%s",
                scope["method"],
                scope["path"],
                kind.__module__,
                kind.__qualname__,
                correlation_id,
                exception_trail(exc),
            )
            if started:
                # Half an answer has gone out: nothing to do but end the connection.
                return
            headers = {REQUEST_ID_HEADER: correlation_id}
            detail = (
                "an unexpected error stopped this request; the server log has its details "
                f"under correlation id {correlation_id}"
            )
            request = Request(scope)
            response: Response
            if is_fhir(request.url.path):
                outcome = FhirError(500, "exception", detail).outcome
                response = FhirResponse(
                    {**outcome, "id": correlation_id}, status_code=500, headers=headers
                )
            else:
                response = problem_response(
                    request,
                    500,
                    "Internal Server Error",
                    detail,
                    headers,
                    correlation_id=correlation_id,
                )
            await response(scope, receive, send)

    @staticmethod
    async def _store_unavailable(
        exc: BaseException, scope: Scope, receive: Receive, send: Send
    ) -> None:
        """The store away or busy (locked, connection lost): nothing the client did and
        nothing lost that was acknowledged. A 503 it can retry, not a 500."""
        log.warning(
            "%s %s: store unavailable (%s)",
            scope["method"],
            scope["path"],
            describe_store_error(exc),
        )
        headers = {"Retry-After": str(RETRY_AFTER_SECONDS)}
        detail = "the store is busy or unreachable; nothing was changed: try again shortly"
        request = Request(scope)
        response: Response
        if is_fhir(request.url.path):
            outcome = FhirError(503, "transient", detail).outcome
            response = FhirResponse(outcome, status_code=503, headers=headers)
        else:
            response = problem_response(request, 503, "Service Unavailable", detail, headers)
        await response(scope, receive, send)


def install_error_boundary(app: FastAPI) -> None:
    app.add_middleware(ErrorBoundary)
