"""Which people a client may read: everyone, or with only patient-level scopes the one
person its token's `patient` claim names. Anyone else is answered as if absent."""

from __future__ import annotations

from sqlalchemy import Connection

from integration.access.principal import Principal
from integration.store.queries import resolve_person


def may_read(conn: Connection, principal: Principal, person_id: str) -> bool:
    """`person_id` as resolved (merges followed)."""
    if principal.patient is None:
        return True
    return resolve_person(conn, principal.patient) == person_id
