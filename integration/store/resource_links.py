"""Which Conditions each Encounter names, kept so that a Condition arriving after the
Encounters that name it can put them back on the derivation queue."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
from sqlalchemy import Connection, and_, delete, select

from integration.store.keys import in_keys, key_groups
from integration.store.schema import current_resources, raw_resources, resource_links


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


def encounters_naming(
    conn: Connection, conditions: Sequence[tuple[str, str]]
) -> list[tuple[str, str]]:
    """(source, Encounter id) of the Encounters that name these (source, Condition id),
    in one statement per source."""
    found: list[tuple[str, str]] = []
    for by_source in key_groups((resource_links.c.source, resource_links.c.to_id), conditions):
        found.extend(
            (row.source, row.from_id)
            for row in conn.execute(
                select(resource_links.c.source, resource_links.c.from_id).where(
                    resource_links.c.from_type == "Encounter",
                    resource_links.c.to_type == "Condition",
                    by_source,
                )
            )
        )
    return list(dict.fromkeys(found))


def replace_encounter_evidence(
    conn: Connection,
    resource_type: str,
    resources: Sequence[tuple[str, str]],
    naming: Sequence[tuple[str, str, str]],
) -> None:
    """Which Encounter each of these (source, id) resources of one type names (its
    `encounter`): now `naming`, as (source, resource id, Encounter id)."""
    conn.execute(
        delete(resource_links).where(
            resource_links.c.from_type == resource_type,
            resource_links.c.to_type == "Encounter",
            in_keys((resource_links.c.source, resource_links.c.from_id), resources),
        )
    )
    if naming:
        conn.execute(
            resource_links.insert(),
            [
                {
                    "source": source,
                    "from_type": resource_type,
                    "from_id": resource_id,
                    "to_type": "Encounter",
                    "to_id": encounter_id,
                }
                for source, resource_id, encounter_id in naming
            ],
        )


def encounters_named_by(
    conn: Connection, resource_type: str, resources: Sequence[tuple[str, str]]
) -> list[tuple[str, str]]:
    """(source, Encounter id) of the Encounters these (source, id) resources of one type
    name (as `replace_encounter_evidence` kept them)."""
    if not resources:
        return []
    rows = conn.execute(
        select(resource_links.c.source, resource_links.c.to_id).where(
            resource_links.c.from_type == resource_type,
            resource_links.c.to_type == "Encounter",
            in_keys((resource_links.c.source, resource_links.c.from_id), resources),
        )
    )
    return list(dict.fromkeys((row.source, row.to_id) for row in rows))


def evidence_naming(
    conn: Connection, encounters: Sequence[tuple[str, str]]
) -> list[tuple[str, str, str, dict[str, Any]]]:
    """The current resources that name these (source, Encounter id): (source, Encounter
    id, resource type, content) each, set-based."""
    if not encounters:
        return []
    links = resource_links
    rows = conn.execute(
        select(links.c.source, links.c.to_id, links.c.from_type, raw_resources.c.content)
        .join(
            current_resources,
            and_(
                current_resources.c.source == links.c.source,
                current_resources.c.resource_type == links.c.from_type,
                current_resources.c.resource_id == links.c.from_id,
            ),
        )
        .join(raw_resources, raw_resources.c.id == current_resources.c.raw_id)
        .where(
            links.c.to_type == "Encounter",
            in_keys((links.c.source, links.c.to_id), encounters),
            current_resources.c.deleted.is_(False),
        )
    ).all()
    return [(row[0], row[1], row[2], orjson.loads(row[3])) for row in rows]
