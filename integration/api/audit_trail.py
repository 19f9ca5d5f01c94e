"""Every request touching patient data leaves an audit row: who (the client the key,
token or push key named), from where, which person, what (method, path, query),
when, and how it went (status). Written when the response starts, so a refused or
failed request is audited too. Routes that hold no patient data (health, status,
sources, subscriptions, the API docs, the operational metrics at /metrics) are not
audited; /metrics/outcomes, cohort measures over patients' episodes, is. The web UI's
pages are, like the API reads they make.

A plain ASGI middleware, as the request log is (see request_log.py)."""

from __future__ import annotations

import re
from urllib.parse import parse_qs

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from integration.access.audit import AuditWriter, audit_row, outcome_of

AUDITED = re.compile(r"^/(people|fhir|feed|metrics|quarantine|ui)(/|$)")
NOT_AUDITED = {"/fhir/metadata", "/metrics"}
# The web UI's stylesheet holds nothing of anyone's.
NOT_AUDITED_UNDER = "/ui/static/"
PERSON_IN_PATH = re.compile(r"^(?:/ui)?/people/(?!review$|links$)([^/]+)")
ACTIONS = {"GET": "R", "HEAD": "R", "POST": "C", "PUT": "U", "PATCH": "U", "DELETE": "D"}


def _subtype(method: str, path: str) -> str:
    if method in ("GET", "HEAD"):
        last = path.rstrip("/").rsplit("/", 1)[-1]
        return (
            "search" if last[:1].isupper() or last in ("people", "feed", "quarantine") else "read"
        )
    # Any other method (OPTIONS, TRACE, ...) is answered 405 and audited as an attempt.
    return {"POST": "create", "PUT": "update", "PATCH": "update", "DELETE": "delete"}.get(
        method, "execute"
    )


def _person(path: str, query: str) -> str | None:
    found = PERSON_IN_PATH.match(path)
    if found:
        return found.group(1)
    params = parse_qs(query)
    for name in ("patient", "person"):
        if params.get(name):
            return params[name][0].removeprefix("Patient/")
    return None


class AuditTrail:
    def __init__(self, app: ASGIApp, writer: AuditWriter) -> None:
        self.app = app
        self.writer = writer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if (
            scope["type"] != "http"
            or path in NOT_AUDITED
            or path.startswith(NOT_AUDITED_UNDER)
            or not AUDITED.match(path)
        ):
            await self.app(scope, receive, send)
            return
        noted = False

        async def send_auditing(message: Message) -> None:
            nonlocal noted
            if message["type"] == "http.response.start" and not noted:
                noted = True
                self._note(scope, message)
            await send(message)

        try:
            await self.app(scope, receive, send_auditing)
        finally:
            if not noted:  # no response at all: the server failed
                self._note(scope, {"status": 500, "headers": []})

    def _note(self, scope: Scope, message: Message) -> None:
        method = scope["method"]
        path = scope["path"]
        query = scope.get("query_string", b"").decode("latin-1")
        status = int(message["status"])
        headers = dict(message.get("headers") or [])
        state = scope.get("state") or {}
        client = scope.get("client")
        self.writer.record(
            audit_row(
                action=ACTIONS.get(method, "E"),
                subtype=_subtype(method, path),
                outcome=outcome_of(status),
                client=state.get("client", "anonymous"),
                address=client[0] if client else None,
                # A route that resolved whose data it served says so (an EpisodeOfCare
                # read); else the person the path or query names.
                person_id=state.get("person") or _person(path, query),
                method=method,
                path=path,
                query=query or None,
                status=status,
                request_id=headers.get(b"x-request-id", b"").decode() or state.get("request_id"),
            )
        )


def install_audit_trail(app: FastAPI, writer: AuditWriter) -> None:
    app.add_middleware(AuditTrail, writer=writer)
