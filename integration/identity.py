"""Which person is this Patient? One person per source Patient, merged across sources
when two Patients share an identifier (same system and value).

Person ids are deterministic (a UUID derived from the first source Patient
seen), so the same data gives the same ids on every machine. When a new
Patient's identifiers join two existing people, they merge into the one with
the smaller id and the other is marked `merged_into` it. Merges are not undone
automatically when identifiers change later.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Connection, delete, insert, select, update

from integration.store.queries import person_ids_with_identifiers
from integration.store.schema import patient_identifiers, people, person_links
from integration.store.upsert import insert_ignore, upsert

PERSON_NAMESPACE = uuid.UUID("8f1d7c1e-3a4b-5c6d-9e8f-0a1b2c3d4e5f")


def person_id_for(source: str, patient_id: str) -> str:
    return str(uuid.uuid5(PERSON_NAMESPACE, f"{source}|{patient_id}"))


def identifiers_of(patient: dict[str, Any]) -> list[tuple[str, str]]:
    """(system, value) pairs a Patient can be matched on: both parts present."""
    found: list[tuple[str, str]] = []
    identifiers = patient.get("identifier")
    if isinstance(identifiers, list):
        for identifier in identifiers:
            if not isinstance(identifier, dict):
                continue
            system, value = identifier.get("system"), identifier.get("value")
            if isinstance(system, str) and isinstance(value, str) and system and value:
                pair = (system[:400], value[:200])
                if pair not in found:
                    found.append(pair)
    return found


def display_name(patient: dict[str, Any]) -> str | None:
    names = patient.get("name")
    if not isinstance(names, list) or not names or not isinstance(names[0], dict):
        return None
    name = names[0]
    if isinstance(name.get("text"), str):
        return str(name["text"])
    given = [g for g in name.get("given", []) if isinstance(g, str)]
    family = name.get("family") if isinstance(name.get("family"), str) else None
    parts = [*given, family] if family else given
    return " ".join(parts) or None


def link_patient(
    conn: Connection, source: str, patient_id: str, patient: dict[str, Any], now: str
) -> str:
    """Link a (source, Patient id) to a person, merging people that share an identifier."""
    pairs = identifiers_of(patient)
    conn.execute(
        delete(patient_identifiers).where(
            patient_identifiers.c.source == source, patient_identifiers.c.patient_id == patient_id
        )
    )
    insert_ignore(
        conn,
        patient_identifiers,
        [{"system": s, "value": v, "source": source, "patient_id": patient_id} for s, v in pairs],
        keys=("system", "value", "source", "patient_id"),
    )
    candidates: set[str] = set()
    own = conn.execute(
        select(person_links.c.person_id).where(
            person_links.c.source == source, person_links.c.patient_id == patient_id
        )
    ).scalar_one_or_none()
    if own is not None:
        candidates.add(own)
    if pairs:
        matches: list[str] = list(conn.execute(person_ids_with_identifiers(pairs)).scalars())
        candidates.update(matches)
    if candidates:
        person_id = min(candidates)
        others = sorted(candidates - {person_id})
        if others:
            conn.execute(
                update(person_links)
                .where(person_links.c.person_id.in_(others))
                .values(person_id=person_id)
            )
            conn.execute(
                update(people).where(people.c.id.in_(others)).values(merged_into=person_id)
            )
    else:
        person_id = person_id_for(source, patient_id)
        exists = conn.execute(select(people.c.id).where(people.c.id == person_id)).first()
        if exists is None:
            conn.execute(insert(people).values(id=person_id, created_at=now, merged_into=None))
        else:
            conn.execute(update(people).where(people.c.id == person_id).values(merged_into=None))
    birth_date = patient.get("birthDate")
    upsert(
        conn,
        person_links,
        [
            {
                "source": source,
                "patient_id": patient_id,
                "person_id": person_id,
                "display_name": display_name(patient),
                "birth_date": birth_date[:10] if isinstance(birth_date, str) else None,
            }
        ],
        keys=("source", "patient_id"),
        update=("person_id", "display_name", "birth_date"),
    )
    return person_id
