"""Which people a client may read: everyone, or with only patient-level scopes the one
person its token's `patient` claim names; never a person whose privacy Consent
withholds them from this client (or from every client). Anyone else is answered as if
absent."""

from __future__ import annotations

from sqlalchemy import Connection

from integration.access.principal import Principal
from integration.clock import utc_now
from integration.store import consents
from integration.store.queries import resolve_person


def may_read(conn: Connection, principal: Principal, person_id: str) -> bool:
    """`person_id` as resolved (merges followed)."""
    if principal.patient is not None and resolve_person(conn, principal.patient) != person_id:
        return False
    return person_id not in withheld_from(conn, principal)


def withheld_from(conn: Connection, principal: Principal) -> set[str]:
    """The people privacy Consents withhold from this client today."""
    return consents.withheld_people(conn, principal.client_id, utc_now()[:10])
