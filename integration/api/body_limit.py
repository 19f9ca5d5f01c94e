"""A size limit on the journey API's request bodies (subscriptions, reviewers'
decisions): past `max_request_bytes` the answer is a 413 problem, and no more of
the body is read. /fhir has its own limit, `max_push_bytes`, checked as each push
reads its body (`routes.fhir.read_json`), since FHIR bodies are far larger.
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from integration.api.problems import is_fhir, problem_response


def _over(limit: int) -> str:
    return f"the request body is over this API's {limit}-byte limit"


class BodyLimit:
    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or is_fhir(scope["path"]):
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.limit:
            await self._too_large(scope, receive, send)
            return
        size = 0

        async def receive_counting() -> Message:
            nonlocal size
            message = await receive()
            if message["type"] == "http.request":
                size += len(message.get("body", b""))
                if size > self.limit:
                    # An HTTPException: FastAPI passes it through its body parsing (any
                    # other error there becomes a 400) to the problem handlers.
                    raise HTTPException(413, _over(self.limit))
            return message

        await self.app(scope, receive_counting, send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = problem_response(Request(scope), 413, "Content Too Large", _over(self.limit))
        await response(scope, receive, send)
