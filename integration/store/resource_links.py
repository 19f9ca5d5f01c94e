"""Which Conditions each Encounter names, kept so that a Condition arriving after the
Encounters that name it can put them back on the derivation queue."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, delete, select

from integration.store.keys import in_keys
from integration.store.schema import resource_links


def replace_encounter_conditions(
    conn: Connection,
    encounters: Sequence[tuple[str, str]],
    named: Sequence[tuple[str, str, str]],
) -> None:
    """The Conditions these (source, Encounter id) name are now `named`, as (source,
    Encounter id, Condition id): the links they had before are deleted."""
    conn.execute(
        delete(resource_links).where(
            resource_links.c.from_type == "Encounter",
            in_keys((resource_links.c.source, resource_links.c.from_id), encounters),
        )
    )
    if named:
        conn.execute(
            resource_links.insert(),
            [
                {
                    "source": source,
                    "from_type": "Encounter",
                    "from_id": encounter_id,
                    "to_type": "Condition",
                    "to_id": condition_id,
                }
                for source, encounter_id, condition_id in named
            ],
        )


def encounters_naming(conn: Connection, source: str, condition_id: str) -> list[str]:
    """Ids of the source's Encounters that name this Condition."""
    return list(
        conn.execute(
            select(resource_links.c.from_id).where(
                resource_links.c.source == source,
                resource_links.c.from_type == "Encounter",
                resource_links.c.to_type == "Condition",
                resource_links.c.to_id == condition_id,
            )
        )
        .scalars()
        .all()
    )
