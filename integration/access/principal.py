"""Who is calling: the client a key or token names, and what it may do."""

from __future__ import annotations

from dataclasses import dataclass

from integration.access.population import Population
from integration.access.scopes import Permission


@dataclass(frozen=True, slots=True)
class Principal:
    client_id: str
    how: str  # "api-key" or "oauth"
    permissions: frozenset[Permission]
    # With only patient-level SMART scopes: the one person this client may read.
    patient: str | None = None
    # The people this client may see at all; None: everyone.
    population: Population | None = None

    @property
    def label(self) -> str:
        """Who made a change, as kept in histories (never a key)."""
        return f"{self.how}:{self.client_id}"

    def may(self, permission: Permission) -> bool:
        return permission in self.permissions
