"""Dependencies shared by the routers: settings, the store engine, the caller's API key.

They never block, so they are `async def`: FastAPI runs a plain `def`
dependency in its thread pool, and the handoffs (four per request) cost a
journey read more time than its database queries.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Engine

from integration.api.problems import ApiProblem
from integration.config import Settings

_bearer = HTTPBearer(
    auto_error=False, scheme_name="ApiKey", description="An API key from JOURNEY_API_KEYS"
)


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


async def get_read_engine(request: Request) -> Engine:
    """The store for read-only routes: each statement commits on its own, so a read
    costs no BEGIN and ROLLBACK round trips (on PostgreSQL, p50 1.4 -> 0.8 ms for a
    journey page)."""
    engine: Engine = request.app.state.read_engine
    return engine


# PostgreSQL text cannot hold U+0000 and no id or value in the store has one: a parameter
# that does is refused as invalid (400), where the store query would fail (500).
WITHOUT_NUL = r"^[^\x00]*$"

SettingsDep = Annotated[Settings, Depends(get_settings)]
StoreDep = Annotated[Engine, Depends(get_engine)]
ReadStoreDep = Annotated[Engine, Depends(get_read_engine)]


async def require_api_key(
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    """The caller's key, if it is one of the configured keys; else 401."""
    challenge = {"WWW-Authenticate": 'Bearer realm="fhir-journey"'}
    if credentials is None:
        raise ApiProblem(
            401, "Unauthorized", "send an API key as 'Authorization: Bearer <key>'", challenge
        )
    if not settings.api_keys:
        raise ApiProblem(
            401,
            "Unauthorized",
            "this server has no API keys configured (JOURNEY_API_KEYS)",
            challenge,
        )
    if not is_api_key(settings, credentials.credentials):
        raise ApiProblem(401, "Unauthorized", "the API key is not valid", challenge)
    return credentials.credentials


def is_api_key(settings: Settings, presented: str) -> bool:
    """One of the configured API keys? Compared against every key in constant time, so
    timing tells nothing."""
    given = presented.encode()
    matches = [secrets.compare_digest(given, key.encode()) for key in settings.api_keys]
    return any(matches)


CallerDep = Annotated[str, Depends(require_api_key)]


def caller_label(key: str) -> str:
    """Who made a change (closed an entry, linked two people), without the key itself."""
    return "api-key:" + hashlib.sha256(key.encode()).hexdigest()[:12]
