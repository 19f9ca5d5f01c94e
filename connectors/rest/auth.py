"""Authentication for FHIR servers, as httpx.Auth flows.

- `BearerToken`: a static token.
- `ClientCredentials`: OAuth2 client credentials with a client secret
  (client_secret_basic).
- `SmartBackendServices`: SMART Backend Services; the client authenticates
  with a signed JWT assertion (RS384 or ES384, key from a PEM file).

Both OAuth flows find the token endpoint in `.well-known/smart-configuration`
when none is configured, cache the access token until shortly before it
expires, and on a 401 fetch a new token and retry the request once; a 401
after that reaches the caller as the clear error it is, never a loop. The
token requests go through the same client (httpx sends what the flow yields).
"""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

import httpx
import jwt
import orjson

from connectors.errors import FatalFhirError

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
# Fetch a new token this long before the old one expires, so none dies mid-request.
REFRESH_MARGIN_SECONDS = 60.0


class BearerToken(httpx.Auth):
    """Sends a fixed token; a token that stays refused is the caller's clear error."""

    def __init__(self, token: str) -> None:
        self._header = f"Bearer {token}"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = self._header
        yield request


class _OAuthToken(httpx.Auth):
    """Token caching, discovery and one re-auth on 401, shared by the OAuth flows."""

    requires_response_body = True

    def __init__(
        self,
        base_url: str,
        scope: str,
        token_url: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.scope = scope
        self.token_url = token_url
        self.clock = clock
        self._token: str | None = None
        self._expires_at = 0.0

    def _form(self, token_url: str) -> tuple[dict[str, str], dict[str, str]]:
        """The token request's form fields and extra headers."""
        raise NotImplementedError

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if self._token is None or self.clock() >= self._expires_at - REFRESH_MARGIN_SECONDS:
            yield from self._fetch_token()
        request.headers["Authorization"] = f"Bearer {self._token}"
        response = yield request
        if response.status_code == 401:
            # The token may have been revoked or expired early: one fresh token, one retry.
            yield from self._fetch_token()
            request.headers["Authorization"] = f"Bearer {self._token}"
            yield request

    def _fetch_token(self) -> Generator[httpx.Request, httpx.Response, None]:
        if self.token_url is None:
            discovery = f"{self.base_url}/.well-known/smart-configuration"
            response = yield httpx.Request("GET", discovery, headers={"Accept": "application/json"})
            self.token_url = _token_endpoint(response, discovery)
        form, headers = self._form(self.token_url)
        response = yield httpx.Request(
            "POST",
            self.token_url,
            data={"grant_type": "client_credentials", "scope": self.scope, **form},
            headers={"Accept": "application/json", **headers},
        )
        body = _json(response)
        token = body.get("access_token") if response.status_code == 200 else None
        if not isinstance(token, str) or not token:
            error = body.get("error_description") or body.get("error") or response.reason_phrase
            raise FatalFhirError(self.token_url, response.status_code, f"no access token: {error}")
        expires_in = body.get("expires_in")
        lifetime = float(expires_in) if isinstance(expires_in, int | float) else 300.0
        self._token = token
        self._expires_at = self.clock() + lifetime


class ClientCredentials(_OAuthToken):
    """OAuth2 client credentials with a shared secret (client_secret_basic)."""

    def __init__(
        self, base_url: str, client_id: str, client_secret: str, scope: str, **kwargs: Any
    ) -> None:
        super().__init__(base_url, scope, **kwargs)
        pair = f"{client_id}:{client_secret}".encode()
        self._basic = "Basic " + base64.b64encode(pair).decode()

    def _form(self, token_url: str) -> tuple[dict[str, str], dict[str, str]]:
        return {}, {"Authorization": self._basic}


class SmartBackendServices(_OAuthToken):
    """SMART Backend Services: a JWT client assertion signed with the client's private key."""

    def __init__(
        self,
        base_url: str,
        client_id: str,
        private_key_pem: bytes,
        scope: str,
        algorithm: str = "RS384",
        key_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(base_url, scope, **kwargs)
        if algorithm not in ("RS384", "ES384"):
            raise ValueError("SMART Backend Services signs with RS384 or ES384")
        self.client_id = client_id
        self.algorithm = algorithm
        self.key_id = key_id
        self._key = private_key_pem

    @classmethod
    def from_pem_file(
        cls, base_url: str, client_id: str, path: Path, scope: str, **kwargs: Any
    ) -> SmartBackendServices:
        return cls(base_url, client_id, path.read_bytes(), scope, **kwargs)

    def assertion(self, token_url: str) -> str:
        now = int(self.clock())
        claims = {
            "iss": self.client_id,
            "sub": self.client_id,
            "aud": token_url,
            "exp": now + 240,  # servers accept at most five minutes ahead
            "jti": uuid.uuid4().hex,
        }
        headers = {"kid": self.key_id} if self.key_id else None
        return jwt.encode(claims, self._key, algorithm=self.algorithm, headers=headers)

    def _form(self, token_url: str) -> tuple[dict[str, str], dict[str, str]]:
        return {
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": self.assertion(token_url),
        }, {}


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return {}
    return body if isinstance(body, dict) else {}


def _token_endpoint(response: httpx.Response, url: str) -> str:
    endpoint = _json(response).get("token_endpoint") if response.status_code == 200 else None
    if not isinstance(endpoint, str):
        raise FatalFhirError(
            url, response.status_code, "no token_endpoint in the SMART configuration; set token_url"
        )
    return endpoint
