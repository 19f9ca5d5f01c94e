"""People and their links to source Patients: the statements identity runs.

Which Patients are one person is decided in `integration.journey.identity`;
this module only reads and writes what it decided.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, delete, select, update

from integration.store.keys import in_keys
from integration.store.queries import person_ids_with_identifiers
from integration.store.schema import patient_identifiers, people, person_links
from integration.store.upsert import insert_ignore, upsert


@dataclass(frozen=True, slots=True)
class PatientLink:
    source: str
    patient_id: str
    person_id: str
    display_name: str | None
    birth_date: str | None


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


def links_of(conn: Connection, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """The person each of these (source, Patient id) is linked to now, where it is."""
    return {
        (row.source, row.patient_id): row.person_id
        for row in conn.execute(
            select(
                person_links.c.source, person_links.c.patient_id, person_links.c.person_id
            ).where(in_keys((person_links.c.source, person_links.c.patient_id), keys))
        )
    }


def people_holding(
    conn: Connection, pairs: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], list[str]]:
    """The people whose Patients carry each (system, value)."""
    held: dict[tuple[str, str], list[str]] = {}
    if pairs:
        for row in conn.execute(
            person_ids_with_identifiers(pairs).add_columns(
                patient_identifiers.c.system, patient_identifiers.c.value
            )
        ):
            held.setdefault((row.system, row.value), []).append(row.person_id)
    return held


def merge_people(conn: Connection, merged: Mapping[str, str]) -> None:
    """Move each merged person's links to its target and mark it `merged_into` it."""
    for other, target in merged.items():
        conn.execute(
            update(person_links).where(person_links.c.person_id == other).values(person_id=target)
        )
        conn.execute(update(people).where(people.c.id == other).values(merged_into=target))


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
            }
            for link in links
        ],
        keys=("source", "patient_id"),
        update=("person_id", "display_name", "birth_date"),
    )
