"""A source's own merges: which of its Patients replaced which, as each Patient's
`link` says now (`integration.journey.identity` joins the two into one person)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sqlalchemy import Connection, delete, select

from integration.store.keys import in_keys
from integration.store.matches import PatientKey
from integration.store.schema import patient_replacements
from integration.store.upsert import insert_ignore

# (replaced, survivor), both of one source.
Replacement = tuple[PatientKey, PatientKey]


def replace_declarations(
    conn: Connection, declared: Mapping[PatientKey, Sequence[Replacement]]
) -> None:
    """What each of these Patients declares now (its replaced-by and replaces links);
    what it declared before and no longer does is forgotten."""
    c = patient_replacements.c
    if not declared:
        return
    conn.execute(
        delete(patient_replacements).where(in_keys((c.source, c.declared_by), list(declared)))
    )
    insert_ignore(
        conn,
        patient_replacements,
        [
            {
                "source": declarer[0],
                "patient_id": old[1],
                "replaced_by": survivor[1],
                "declared_by": declarer[1],
            }
            for declarer, pairs in declared.items()
            for old, survivor in pairs
        ],
        keys=("source", "patient_id", "replaced_by", "declared_by"),
    )


def replacements_touching(conn: Connection, keys: Sequence[PatientKey]) -> set[Replacement]:
    """The standing replacements either side of which is one of these Patients."""
    if not keys:
        return set()
    c = patient_replacements.c
    found: set[Replacement] = set()
    # Each side by its own index: an OR of the two would scan the table.
    for side in (c.patient_id, c.replaced_by):
        for row in conn.execute(
            select(c.source, c.patient_id, c.replaced_by).where(in_keys((c.source, side), keys))
        ):
            found.add(((row.source, row.patient_id), (row.source, row.replaced_by)))
    return found
