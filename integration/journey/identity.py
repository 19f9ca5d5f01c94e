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
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection

from integration.store import people as people_store
from integration.store.text import storable

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
                pair = (storable(system[:400]), storable(value[:200]))
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


@dataclass(frozen=True, slots=True)
class SourcePatient:
    source: str
    patient_id: str
    resource: dict[str, Any]

    @property
    def key(self) -> tuple[str, str]:
        return (self.source, self.patient_id)


# A node is a source Patient ("patient", source, id) or a person ("person", id, "").
Node = tuple[str, str, str]


class _Groups:
    """Union-find over patients and people: whatever shares an identifier is one person."""

    def __init__(self) -> None:
        self.parent: dict[Node, Node] = {}

    def find(self, node: Node) -> Node:
        self.parent.setdefault(node, node)
        root = node
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[node] != root:  # path compression
            self.parent[node], node = root, self.parent[node]
        return root

    def union(self, a: Node, b: Node) -> None:
        self.parent[self.find(a)] = self.find(b)

    def components(self) -> list[list[Node]]:
        found: dict[Node, list[Node]] = {}
        for node in list(self.parent):
            found.setdefault(self.find(node), []).append(node)
        return list(found.values())


def link_patients(
    conn: Connection, batch: Sequence[SourcePatient], now: str
) -> dict[tuple[str, str], str]:
    """Link each (source, Patient id) of a batch to a person, merging people that share
    an identifier. A handful of statements per batch, not per Patient. Returns the links."""
    if not batch:
        return {}
    keys = [patient.key for patient in batch]
    pairs_of = {patient.key: identifiers_of(patient.resource) for patient in batch}
    people_store.replace_identifiers(conn, pairs_of)
    own = people_store.links_of(conn, keys)
    all_pairs = sorted({pair for pairs in pairs_of.values() for pair in pairs})
    people_by_pair = people_store.people_holding(conn, all_pairs)

    groups = _Groups()
    first_holder: dict[tuple[str, str], Node] = {}
    for source, patient_id in keys:
        node: Node = ("patient", source, patient_id)
        groups.find(node)
        if (source, patient_id) in own:
            groups.union(node, ("person", own[(source, patient_id)], ""))
        for pair in pairs_of[(source, patient_id)]:
            for person_id in people_by_pair.get(pair, ()):
                groups.union(node, ("person", person_id, ""))
            groups.union(node, first_holder.setdefault(pair, node))

    order = {key: index for index, key in enumerate(keys)}
    links: dict[tuple[str, str], str] = {}
    merged: dict[str, str] = {}
    for component in groups.components():
        people_in = sorted(node[1] for node in component if node[0] == "person")
        patients_in = sorted(
            ((node[1], node[2]) for node in component if node[0] == "patient"),
            key=order.__getitem__,
        )
        # Keep an existing person when there is one; else the batch's first Patient names it.
        target = people_in[0] if people_in else person_id_for(*patients_in[0])
        merged.update(dict.fromkeys(people_in[1:], target))
        links.update(dict.fromkeys(patients_in, target))
    people_store.merge_people(conn, merged)
    people_store.ensure_people(conn, sorted(set(links.values())), now)
    people_store.write_links(
        conn,
        [
            people_store.PatientLink(
                patient.source,
                patient.patient_id,
                links[patient.key],
                storable(display_name(patient.resource)),
                storable(_birth_date(patient.resource)),
            )
            for patient in batch
        ],
    )
    return links


def _birth_date(patient: dict[str, Any]) -> str | None:
    birth_date = patient.get("birthDate")
    return birth_date[:10] if isinstance(birth_date, str) else None
