"""OAuth2 bearer tokens (JWTs) from an external issuer, checked against its JWKS.

Only asymmetric algorithms are accepted (never `none`, never an HMAC one, so a token
signed with the issuer's public key as an HMAC secret fails). Issuer, audience,
expiry and not-before are checked with 30 s of leeway. The issuer's keys are cached:
fetched again after `refresh_seconds`, or sooner for a key id not yet known (a key
rotation), at most once per `MIN_FETCH_GAP_SECONDS`. While the issuer cannot be
reached, the keys already known keep working for `max_stale_hours`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import jwt

from integration.access.principal import Principal
from integration.access.scopes import Permission, permissions
from integration.errors import IntegrationError

log = logging.getLogger(__name__)
MIN_FETCH_GAP_SECONDS = 10.0
LEEWAY_SECONDS = 30
ASYMMETRIC = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512")


class TokenRejected(IntegrationError):
    """A bearer token that is not valid here; the reason names no claim value."""


class IssuerKeysUnavailable(IntegrationError):
    """The issuer's keys cannot be fetched and none are known (or they are too old)."""


@dataclass(frozen=True, slots=True)
class OAuthConfig:
    issuer: str
    audience: str
    jwks_url: str
    algorithms: tuple[str, ...] = ("RS256", "ES256", "PS256")
    refresh_seconds: float = 300.0
    max_stale_hours: float = 24.0


def _fetch_json(url: str) -> Any:
    answer = httpx.get(url, timeout=5.0)
    answer.raise_for_status()
    return answer.json()


class JwksCache:
    def __init__(
        self,
        config: OAuthConfig,
        fetch: Callable[[str], Any] = _fetch_json,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._config = config
        self._fetch = fetch
        self._clock = clock
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at = float("-inf")  # last attempt
        self._good_at = float("-inf")  # last success
        self._lock = threading.Lock()

    def key(self, kid: str) -> jwt.PyJWK:
        now = self._clock()
        stale = now - self._fetched_at >= self._config.refresh_seconds
        unknown = kid not in self._keys and now - self._fetched_at >= MIN_FETCH_GAP_SECONDS
        if stale or unknown:
            self._refresh()
        if self._clock() - self._good_at > self._config.max_stale_hours * 3600:
            raise IssuerKeysUnavailable(
                "the token issuer's keys cannot be fetched, and none are known recently enough"
            )
        found = self._keys.get(kid)
        if found is None:
            raise TokenRejected("the token is signed with a key the issuer does not publish")
        return found

    def _refresh(self) -> None:
        with self._lock:
            if self._clock() - self._fetched_at < MIN_FETCH_GAP_SECONDS:
                return  # another request just fetched
            self._fetched_at = self._clock()
            try:
                keys = jwt.PyJWKSet.from_dict(self._fetch(self._config.jwks_url)).keys
            except (httpx.HTTPError, ValueError, jwt.PyJWTError) as exc:
                # The issuer is away: the keys known so far keep working (max_stale_hours).
                log.warning("token issuer keys not fetched: %s", type(exc).__name__)
                return
            self._keys = {k.key_id: k for k in keys if k.key_id}
            self._good_at = self._clock()


_REASONS: tuple[tuple[type[jwt.PyJWTError], str], ...] = (
    (jwt.ExpiredSignatureError, "the token has expired"),
    (jwt.ImmatureSignatureError, "the token is not valid yet"),
    (jwt.InvalidAudienceError, "the token is for another audience"),
    (jwt.InvalidIssuerError, "the token is from another issuer"),
    (jwt.MissingRequiredClaimError, "the token lacks a required claim"),
    (jwt.InvalidSignatureError, "the token's signature does not verify"),
    (jwt.InvalidAlgorithmError, "the token's algorithm is not accepted"),
)


class TokenVerifier:
    def __init__(self, config: OAuthConfig, keys: JwksCache | None = None) -> None:
        self._config = config
        self._keys = keys or JwksCache(config)
        self._algorithms = [a for a in config.algorithms if a in ASYMMETRIC]

    def principal(self, token: str) -> Principal:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise TokenRejected("the bearer token is neither an API key nor a JWT") from None
        if header.get("alg") not in self._algorithms:
            raise TokenRejected(
                f"the token's algorithm is not accepted (one of {', '.join(self._algorithms)})"
            )
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise TokenRejected("the token names no key id (kid)")
        key = self._keys.key(kid)
        try:
            claims = jwt.decode(
                token,
                key=key,
                algorithms=self._algorithms,
                audience=self._config.audience,
                issuer=self._config.issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.PyJWTError as exc:
            reason = next((text for kind, text in _REASONS if isinstance(exc, kind)), None)
            raise TokenRejected(reason or "the token is not valid") from None
        return principal_of(claims)


def principal_of(claims: dict[str, Any]) -> Principal:
    """The client a verified token names, with the permissions of its scopes."""
    client = claims.get("client_id") or claims.get("azp") or claims.get("sub")
    if not isinstance(client, str) or not client:
        raise TokenRejected("the token names no client (client_id, azp or sub)")
    raw = claims.get("scope", claims.get("scp", ""))
    if isinstance(raw, str):
        scopes = raw.split()
    elif isinstance(raw, list):
        scopes = [s for s in raw if isinstance(s, str)]
    else:  # null, a number, an object: no scopes
        scopes = []
    granted, patient_only = permissions(scopes)
    if not patient_only:
        return Principal(client, "oauth", granted)
    patient = claims.get("patient")
    if not isinstance(patient, str) or not patient:
        # Patient-level scopes without a patient in context read nobody.
        return Principal(client, "oauth", granted - {Permission.READ_PEOPLE})
    # A client limited to one patient may do nothing else: every other permission
    # (the feed, subscriptions, linking, operations) spans other people.
    return Principal(client, "oauth", granted & {Permission.READ_PEOPLE}, patient)
