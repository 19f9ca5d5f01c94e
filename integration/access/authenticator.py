"""Authentication: an API key from the key ring, or an OAuth2 bearer JWT."""

from __future__ import annotations

import asyncio

from integration.access.clients import KeyRing
from integration.access.oauth import TokenRejected, TokenVerifier
from integration.access.principal import Principal


class Authenticator:
    def __init__(self, keys: KeyRing, tokens: TokenVerifier | None) -> None:
        self._keys = keys
        self._tokens = tokens

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
            return await asyncio.to_thread(self._tokens.principal, credential)
        raise TokenRejected("the API key is not valid")
