"""Dependencies shared by the routers: settings, the store engine, the caller's API key.

They never block, so they are `async def`: FastAPI runs a plain `def`
dependency in its thread pool, and the handoffs (four per request) cost a
journey read more time than its database queries.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer, SecurityScopes
from sqlalchemy import Engine

from integration.access.authenticator import Authenticator
from integration.access.clients import ClientDirectory, KeyRing
from integration.access.oauth import IssuerKeysUnavailable, TokenRejected, TokenVerifier
from integration.access.principal import Principal
from integration.access.rate_limit import RateLimiter
from integration.access.scopes import DESCRIPTIONS, Permission
from integration.api.problems import ApiProblem
from integration.config import Settings

_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="ApiKey",
    description="An API key (JOURNEY_API_KEYS, or a [[clients]] key) or an OAuth2 bearer "
    "JWT from the configured issuer. Each operation names the scope it needs: "
    + "; ".join(f"`{p.value}`: {text}" for p, text in DESCRIPTIONS.items())
    + ". SMART scopes imply them: a Patient or * read at system level reads people and "
    "the feed, at user level people, at patient level the `patient` claim's person; a "
    "Subscription write manages subscriptions.",
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


async def authenticate(
    security_scopes: SecurityScopes,
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The calling client, if its key or token is valid (else 401) and it holds the
    scopes the route names (else 403)."""
    challenge = {"WWW-Authenticate": 'Bearer realm="fhir-journey"'}
    if credentials is None:
        raise ApiProblem(
            401,
            "Unauthorized",
            "send an API key or an OAuth2 token as 'Authorization: Bearer <key or token>'",
            challenge,
        )
    authenticator: Authenticator = request.app.state.authenticator
    if not authenticator.configured:
        raise ApiProblem(
            401,
            "Unauthorized",
            "this server has no API keys configured (JOURNEY_API_KEYS or [[clients]])",
            challenge,
        )
    try:
        principal = await authenticator.principal(credentials.credentials)
    except TokenRejected as exc:
        raise ApiProblem(
            401,
            "Unauthorized",
            str(exc),
            {"WWW-Authenticate": 'Bearer realm="fhir-journey", error="invalid_token"'},
        ) from None
    except IssuerKeysUnavailable as exc:
        raise ApiProblem(503, "Service Unavailable", str(exc), {"Retry-After": "30"}) from None
    wait = admit(request, principal.label)
    if wait:
        raise ApiProblem(429, "Too Many Requests", past_rate(wait), {"Retry-After": str(wait)})
    refusal = lacking(principal, [Permission(scope) for scope in security_scopes.scopes])
    if refusal is not None:
        raise ApiProblem(403, "Forbidden", *refusal)
    return principal


def lacking(
    principal: Principal, permissions: Sequence[Permission]
) -> tuple[str, dict[str, str]] | None:
    """The 403's detail and challenge for the first of `permissions` the client lacks;
    None when it holds them all (the API and /fhir answer it each in their form)."""
    for permission in permissions:
        if not principal.may(permission):
            return f"this client lacks the scope {permission.value}", {
                "WWW-Authenticate": 'Bearer realm="fhir-journey", '
                f'error="insufficient_scope", scope="{permission.value}"'
            }
    return None


def admit(request: Request, client: str) -> int:
    """Note who is calling (for the audit trail) and take one of its rate-limit tokens:
    0 to go on, else the seconds until it may (for Retry-After)."""
    request.state.client = client
    limiter: RateLimiter = request.app.state.rate_limiter
    return limiter.wait_seconds(client)


def past_rate(wait: int) -> str:
    return f"this client is past its rate limit: try again in {wait} s"


def caller_with(*permissions: Permission) -> Any:
    """A route parameter: the calling client, which must hold every one of `permissions`."""
    return Annotated[Principal, Security(authenticate, scopes=[p.value for p in permissions])]


ReadPeople = caller_with(Permission.READ_PEOPLE)
LinkPeople = caller_with(Permission.LINK_PEOPLE)
ReadFeed = caller_with(Permission.READ_FEED)
ManageSubscriptions = caller_with(Permission.MANAGE_SUBSCRIPTIONS)
# Creating or replaying a subscription sends the feed somewhere: it needs the feed too.
SendFeed = caller_with(Permission.MANAGE_SUBSCRIPTIONS, Permission.READ_FEED)
ReadOperations = caller_with(Permission.READ_OPERATIONS)
StartSyncs = caller_with(Permission.START_SYNCS)
ManageQuarantine = caller_with(Permission.MANAGE_QUARANTINE)
ReadMetrics = caller_with(Permission.READ_METRICS)
PurgeData = caller_with(Permission.PURGE_DATA)


def authenticator_of(settings: Settings) -> Authenticator:
    """The app's authenticator: its key ring and, when configured, the token issuer."""
    keys = KeyRing(settings.clients, settings.api_keys, settings.config_file)
    oauth = settings.oauth
    return Authenticator(
        keys,
        TokenVerifier(oauth) if oauth else None,
        ClientDirectory(settings.clients, settings.config_file),
        settings.oauth_listed_clients_only,
    )
