"""Which people a client may read, as query conditions: within its population (if it
has one), only the person its token's `patient` claim names (with only patient-level
SMART scopes), and never a person whose privacy Consent withholds them from this
client (or from every client). Anyone else is answered as if absent.

The conditions go into the query that reads people, records, episodes or events, so
no row of someone else is read and filtered afterwards: pages stay full, cursors and
counts reveal nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import ColumnElement, Connection, false, or_, select

from integration.access.population import Population
from integration.access.principal import Principal
from integration.clock import utc_now
from integration.store import consents
from integration.store.feed import EventFilter
from integration.store.populations import in_population
from integration.store.queries import resolve_person
from integration.store.schema import people


@dataclass(frozen=True, slots=True)
class Readable:
    """The people one client may read now."""

    withheld: frozenset[str]
    population: Population | None
    # With patient-level scopes only: True, and the one person (None: nobody).
    limited: bool = False
    only: str | None = None

    def selecting(self, wanted: EventFilter) -> EventFilter:
        """A feed reader's filter narrowed to these people."""
        return replace(
            wanted,
            withheld=sorted(self.withheld),
            population=self.population,
            nobody=self.limited and self.only is None,
        )

    def where(self, person_id: Any) -> list[ColumnElement[bool]]:
        """Conditions on a person id column that hold for exactly these people (a NULL
        person id, an event about no one, passes unless the client is limited to one
        patient or a population)."""
        clauses: list[ColumnElement[bool]] = []
        if self.limited:
            clauses.append(person_id == self.only if self.only is not None else false())
        if self.population is not None:
            clauses.append(in_population(person_id, self.population))
        if self.withheld:
            clauses.append(or_(person_id.is_(None), person_id.not_in(sorted(self.withheld))))
        return clauses


def readable(conn: Connection, principal: Principal) -> Readable:
    """Read once per request: the Consents now in force, and the token's patient."""
    withheld = consents.withheld_people(conn, principal.client_id, utc_now()[:10])
    if principal.patient is None:
        return Readable(frozenset(withheld), principal.population)
    only = resolve_person(conn, principal.patient)
    return Readable(frozenset(withheld), principal.population, True, only)


def readable_by(
    conn: Connection,
    recipients: Sequence[str],
    population: Population | None,
    nobody: bool = False,
) -> Readable:
    """For a delivery: withheld when a Consent names any of `recipients` (the endpoint,
    and the client that created it) or no one; with `nobody`, no one at all."""
    withheld: set[str] = set()
    today = utc_now()[:10]
    for recipient in recipients:
        withheld |= consents.withheld_people(conn, recipient, today)
    return Readable(frozenset(withheld), population, limited=nobody)


def visible_person(conn: Connection, principal: Principal, person_id: str) -> str | None:
    """The person as resolved (merges followed) if this client may read them, else None.
    A person outside the client's reach and one that does not exist cost the same
    statements, so neither the answer nor its timing tells them apart."""
    resolved = resolve_person(conn, person_id)
    shown = readable(conn, principal)
    found = conn.execute(
        select(people.c.id).where(people.c.id == (resolved or person_id), *shown.where(people.c.id))
    ).first()
    return resolved if found is not None and resolved is not None else None
