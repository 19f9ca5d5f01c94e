"""Authentication: an API key from the key ring, or an OAuth2 bearer JWT."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import jwt

from integration.access.clients import ClientDirectory, KeyRing, digest
from integration.access.oauth import TokenRejected, TokenVerifier
from integration.access.population import WITHIN_A_POPULATION
from integration.access.principal import Principal


class Authenticator:
    def __init__(
        self,
        keys: KeyRing,
        tokens: TokenVerifier | None,
        clients: ClientDirectory | None = None,
        listed_only: bool = False,
    ) -> None:
        self._keys = keys
        self._tokens = tokens
        self._clients = clients
        self._listed_only = listed_only

    @property
    def configured(self) -> bool:
        return self._tokens is not None or self._keys.configured

    async def principal(self, credential: str) -> Principal:
        """The calling client; TokenRejected (or IssuerKeysUnavailable) if none."""
        found = self._keys.principal(credential)
        if found is not None:
            return found
        if self._tokens is not None and credential.count(".") == 2:
            # In a thread: it may fetch the issuer's keys.
            return self._bounded(await asyncio.to_thread(self._tokens.principal, credential))
        raise TokenRejected("the API key is not valid")

    async def sign_in(self, credential: str) -> tuple[Principal, bytes | None, int | None]:
        """For the web UI's login: the client, its key's SHA-256 (an API key) and the
        token's expiry (an OAuth token, seconds since the epoch)."""
        found = self._keys.principal(credential)
        if found is not None:
            return found, digest(credential), None
        principal = await self.principal(credential)
        expires = jwt.decode(credential, options={"verify_signature": False}).get("exp")
        return principal, None, expires if isinstance(expires, int) else None

    def principal_for_key(self, key_digest: bytes) -> Principal | None:
        return self._keys.principal_for_digest(key_digest)

    def _bounded(self, principal: Principal) -> Principal:
        """A token's client as its `[[clients]]` table bounds it: within its population,
        with only the permissions a population allows."""
        if self._clients is None:
            return principal
        if self._listed_only and not self._clients.listed(principal.client_id):
            raise TokenRejected("the token's client is not one this server lists")
        population = self._clients.of(principal.client_id)
        if population is None:
            return principal
        return replace(
            principal,
            population=population,
            permissions=principal.permissions & WITHIN_A_POPULATION,
        )
