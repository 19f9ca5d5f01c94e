"""People and their links to source Patients: the statements identity runs.

Which Patients are one person is decided in `integration.journey.identity`;
this module only reads and writes what it decided.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy import ColumnElement, Connection, bindparam, delete, select, update

from integration.store.keys import in_keys
from integration.store.schema import patient_identifiers, people, person_links
from integration.store.upsert import insert_ignore, upsert


@dataclass(frozen=True, slots=True)
class PatientLink:
    source: str
    patient_id: str
    person_id: str
    display_name: str | None
    birth_date: str | None
    updated_at: str | None = None


def replace_identifiers(
    conn: Connection, pairs_of: Mapping[tuple[str, str], Sequence[tuple[str, str]]]
) -> None:
    """Each (source, Patient id)'s (system, value) identifiers, as they are now."""
    patient_cols = (patient_identifiers.c.source, patient_identifiers.c.patient_id)
    conn.execute(delete(patient_identifiers).where(in_keys(patient_cols, list(pairs_of))))
    insert_ignore(
        conn,
        patient_identifiers,
        [
            {"system": system, "value": value, "source": key[0], "patient_id": key[1]}
            for key, pairs in pairs_of.items()
            for system, value in pairs
        ],
        keys=("system", "value", "source", "patient_id"),
    )


def links_of(
    conn: Connection,
    keys: Sequence[tuple[str, str]],
    readable: Sequence[ColumnElement[bool]] = (),
) -> dict[tuple[str, str], str]:
    """The person each of these (source, Patient id) is linked to now, where it is (and,
    with `readable`, where that person passes those conditions on their id). Asked
    even with no keys when `readable` is given: a $match that found no one costs the
    same statements as one that found only people the client may not see."""
    if not keys and not readable:
        return {}
    return {
        (row.source, row.patient_id): row.person_id
        for row in conn.execute(
            select(
                person_links.c.source, person_links.c.patient_id, person_links.c.person_id
            ).where(
                in_keys((person_links.c.source, person_links.c.patient_id), keys),
                *readable,
            )
        )
    }


def members_of(conn: Connection, person_ids: Sequence[str]) -> dict[str, list[tuple[str, str]]]:
    """Each person's (source, Patient id) members."""
    found: dict[str, list[tuple[str, str]]] = {}
    if person_ids:
        for row in conn.execute(
            select(
                person_links.c.person_id, person_links.c.source, person_links.c.patient_id
            ).where(person_links.c.person_id.in_(sorted(set(person_ids))))
        ):
            found.setdefault(row.person_id, []).append((row.source, row.patient_id))
    return found


def link_details(
    conn: Connection, keys: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], PatientLink]:
    """The stored links of these (source, Patient id)."""
    if not keys:
        return {}
    return {
        (row.source, row.patient_id): PatientLink(
            row.source,
            row.patient_id,
            row.person_id,
            row.display_name,
            row.birth_date,
            row.updated_at,
        )
        for row in conn.execute(
            select(person_links).where(
                in_keys((person_links.c.source, person_links.c.patient_id), keys)
            )
        )
    }


@dataclass(frozen=True, slots=True)
class PersonState:
    merged_into: str | None


def person_state(conn: Connection, person_id: str) -> PersonState | None:
    """Whether a person exists, and whom it was merged into (None: it stands)."""
    row = conn.execute(select(people.c.merged_into).where(people.c.id == person_id)).first()
    return None if row is None else PersonState(row.merged_into)


def mark_merged(conn: Connection, merged: Mapping[str, str]) -> None:
    """Each person that lost all its Patients now answers as the one they went to."""
    if merged:
        conn.execute(
            update(people)
            .where(people.c.id == bindparam("person"))
            .values(merged_into=bindparam("target")),
            [{"person": other, "target": target} for other, target in merged.items()],
        )


def show_as(conn: Connection, shown: Mapping[str, tuple[str | None, str | None]]) -> None:
    """Each person's displayed (name, birth date), chosen by survivorship."""
    if shown:
        conn.execute(
            update(people)
            .where(people.c.id == bindparam("person"))
            .values(display_name=bindparam("name"), birth_date=bindparam("born")),
            [
                {"person": person_id, "name": name, "born": birth_date}
                for person_id, (name, birth_date) in shown.items()
            ],
        )


def ensure_people(conn: Connection, person_ids: Sequence[str], now: str) -> None:
    """These people exist and stand on their own."""
    insert_ignore(
        conn,
        people,
        [{"id": person_id, "created_at": now, "merged_into": None} for person_id in person_ids],
        keys=("id",),
    )
    # A person that had been merged away comes back when a Patient is linked to it alone.
    conn.execute(
        update(people)
        .where(people.c.id.in_(person_ids), people.c.merged_into.is_not(None))
        .values(merged_into=None)
    )


def write_links(conn: Connection, links: Sequence[PatientLink]) -> None:
    upsert(
        conn,
        person_links,
        [
            {
                "source": link.source,
                "patient_id": link.patient_id,
                "person_id": link.person_id,
                "display_name": link.display_name,
                "birth_date": link.birth_date,
                "updated_at": link.updated_at,
            }
            for link in links
        ],
        keys=("source", "patient_id"),
        update=("person_id", "display_name", "birth_date", "updated_at"),
    )
