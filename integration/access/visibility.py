"""Which people a client may read: everyone, or with only patient-level scopes the one
person its token's `patient` claim names; never a person whose privacy Consent
withholds them from this client (or from every client). Anyone else is answered as if
absent."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection

from integration.access.principal import Principal
from integration.clock import utc_now
from integration.store import consents
from integration.store.queries import resolve_person


@dataclass(frozen=True, slots=True)
class Readable:
    """The people one client may read now: all but the withheld, or with patient-level
    scopes only `only` (None there: nobody)."""

    withheld: frozenset[str]
    limited: bool
    only: str | None

    def __contains__(self, person_id: object) -> bool:
        if self.limited and person_id != self.only:
            return False
        return person_id not in self.withheld


def readable(conn: Connection, principal: Principal) -> Readable:
    """Read once per request (a list checks each of its people against it)."""
    withheld = consents.withheld_people(conn, principal.client_id, utc_now()[:10])
    limited = principal.patient is not None
    only = resolve_person(conn, principal.patient) if principal.patient is not None else None
    return Readable(frozenset(withheld), limited, only)


def may_read(conn: Connection, principal: Principal, person_id: str) -> bool:
    """`person_id` as resolved (merges followed)."""
    return person_id in readable(conn, principal)
