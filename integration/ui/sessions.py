"""Signing in to the web UI with the API's own credentials (an API key or an OAuth2
token), and the session that follows.

The session cookie is random (32 bytes), HttpOnly, SameSite=Strict, limited to /ui
and Secure over https; the store keeps only its SHA-256. A session lasts
`ui_session_hours`, or until the token it came from expires. One from an API key
checks that key again on every page (its SHA-256 is kept), so a revoked or rotated
key ends it at once, and a changed population or scope applies at once. Every form
that changes something carries the session's CSRF token, checked in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from fastapi import Request
from sqlalchemy import Engine

from integration.access.authenticator import Authenticator
from integration.access.population import population_from_json, population_json
from integration.access.principal import Principal
from integration.access.scopes import Permission
from integration.clock import utc_now
from integration.store import ui_sessions as store

COOKIE = "journey_session"
LOGIN_CSRF_COOKIE = "journey_login_csrf"


@dataclass(frozen=True, slots=True)
class Session:
    id_digest: str
    principal: Principal
    csrf: str


def _sha(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def principal_json(principal: Principal) -> str:
    return orjson.dumps(
        {
            "client_id": principal.client_id,
            "how": principal.how,
            "permissions": sorted(p.value for p in principal.permissions),
            "patient": principal.patient,
            "population": population_json(principal.population),
        }
    ).decode()


def principal_of(text: str) -> Principal:
    data: dict[str, Any] = orjson.loads(text)
    return Principal(
        data["client_id"],
        data["how"],
        frozenset(Permission(p) for p in data["permissions"]),
        data["patient"],
        population_from_json(data["population"]),
    )


def _later(hours: float) -> str:
    return (datetime.now(UTC) + timedelta(hours=hours)).strftime("%Y-%m-%dT%H:%M:%SZ")


async def sign_in(
    engine: Engine, authenticator: Authenticator, credential: str, hours: float
) -> tuple[str, Session]:
    """A new session for whoever `credential` names (TokenRejected if no one): the
    cookie's value and the session."""
    principal, key_digest, token_expires = await authenticator.sign_in(credential)
    expires = _later(hours)
    if token_expires is not None:
        token_end = datetime.fromtimestamp(token_expires, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        expires = min(expires, token_end)
    cookie = secrets.token_urlsafe(32)
    session = Session(_sha(cookie), principal, secrets.token_urlsafe(32))
    with engine.begin() as conn:
        store.prune(conn, utc_now())
        store.create(
            conn,
            {
                "id_digest": session.id_digest,
                "principal": principal_json(principal),
                "key_digest": key_digest.hex() if key_digest else None,
                "csrf": session.csrf,
                "created_at": utc_now(),
                "expires_at": expires,
            },
        )
    return cookie, session


def session_of(request: Request, engine: Engine, authenticator: Authenticator) -> Session | None:
    """The request's session, if its cookie names a live one whose key still works."""
    cookie = request.cookies.get(COOKIE)
    if not cookie:
        return None
    with engine.connect() as conn:
        row = store.load(conn, _sha(cookie), utc_now())
    if row is None:
        return None
    if row["key_digest"] is not None:
        principal = authenticator.principal_for_key(bytes.fromhex(row["key_digest"]))
        if principal is None:
            return None  # the key was revoked or rotated
    else:
        principal = principal_of(row["principal"])
    return Session(row["id_digest"], principal, row["csrf"])


def sign_out(engine: Engine, session: Session) -> None:
    with engine.begin() as conn:
        store.end(conn, session.id_digest)


def csrf_matches(expected: str, given: str | None) -> bool:
    return given is not None and hmac.compare_digest(expected.encode(), given.encode())
