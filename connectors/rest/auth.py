"""Authentication for FHIR servers, as httpx.Auth flows.

Static bearer tokens for now; OAuth2 client credentials and SMART Backend
Services (signed JWT assertion) plug in here as further `httpx.Auth` classes.
"""

from __future__ import annotations

from collections.abc import Generator

import httpx


class BearerToken(httpx.Auth):
    """Sends a fixed token; a token that stays refused is the caller's clear error."""

    def __init__(self, token: str) -> None:
        self._header = f"Bearer {token}"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = self._header
        yield request
