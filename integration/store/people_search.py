"""Finding people by name, by identifier (with or without its system), by birth date.

Each criterion is a condition on `people.id`, met when any of the person's source
Patients meets it: a maiden name, or a birth date one source has wrong, still finds
the person. The conditions go to `queries.list_people`, which pages by id as every
listing does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Connection, and_, or_, select

from integration.store import queries
from integration.store.schema import patient_demographics, patient_identifiers, people, person_links
from mappings.demographics import fold

_D = patient_demographics.c
_L = person_links.c
_I = patient_identifiers.c


@dataclass(frozen=True, slots=True)
class PeopleSearch:
    """What to find people by; every criterion given must hold (none: everyone)."""

    # Words, each within one Patient's family or given name ("ann smi"; "berg" and
    # "van der" both find "van der Berg"), any case or accent.
    name: str | None = None
    # (system, value); a None system: the value under any system.
    identifier: tuple[str | None, str] | None = None
    # YYYY-MM-DD, or YYYY-MM / YYYY for everyone born that month or year.
    birth_date: str | None = None


def name_words(name: str) -> list[str]:
    """A name as the search compares it: folded as the stored demographics are."""
    return [word for word in (fold(part) for part in name.split()) if word]


def search_people(
    conn: Connection,
    search: PeopleSearch,
    limit: int,
    after: str | None = None,
    readable: Sequence[ColumnElement[bool]] = (),
) -> list[dict[str, Any]]:
    """A page of the people the search finds, as `queries.list_people` lists them;
    `readable`: conditions bounding whom a client may see (`access.visibility`)."""
    return queries.list_people(conn, limit, after, readable=[*_conditions(search), *readable])


def _conditions(search: PeopleSearch) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if search.name is not None:
        conditions.append(people.c.id.in_(_by_name(name_words(search.name))))
    if search.identifier is not None:
        system, value = search.identifier
        if system is None:
            # No index leads with the value: this one scans patient_identifiers.
            conditions.append(people.c.id.in_(_by_identifier_value(value)))
        else:
            conditions.append(
                people.c.id.in_(queries.person_ids_with_identifiers([(system, value)]))
            )
    if search.birth_date is not None:
        born = (
            _L.birth_date == search.birth_date
            if len(search.birth_date) == len("YYYY-MM-DD")
            else _L.birth_date.like(f"{search.birth_date}-%")
        )
        conditions.append(people.c.id.in_(select(_L.person_id).where(born)))
    return conditions


def _by_name(words: list[str]) -> Any:
    if not words:
        raise ValueError("a name to search by needs a letter or a digit")
    # Folded words hold letters and digits only: no LIKE wildcard can be among them.
    each = (or_(_D.family.like(f"%{w}%"), _D.given.like(f"%{w}%")) for w in words)
    return (
        select(_L.person_id)
        .join(patient_demographics, and_(_D.source == _L.source, _D.patient_id == _L.patient_id))
        .where(*each)
    )


def _by_identifier_value(value: str) -> Any:
    return (
        select(_L.person_id)
        .join(patient_identifiers, and_(_I.source == _L.source, _I.patient_id == _L.patient_id))
        .where(_I.value == value)
    )
