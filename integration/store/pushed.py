"""Store queries behind the FHIR write endpoint: versions of one resource, identifier lookups.

A pushed resource's FHIR `versionId` is the id of its raw row (unique, and
increasing with each new version), and its `lastUpdated` is when that row was
received: the server, not the sender, owns both, as FHIR asks. A deletion is a
version like any other (`deleted`): the current version of a deleted resource is its
deletion, and its history keeps every version before it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Row, bindparam, delete, select

from integration.store.keys import key_groups
from integration.store.schema import (
    current_resources,
    pushed_content,
    raw_resources,
    resource_identifiers,
)
from integration.store.upsert import insert_ignore


@dataclass(frozen=True, slots=True)
class StoredVersion:
    resource_type: str
    resource_id: str
    version_id: str
    version_key: str
    received_at: str
    content: str
    # This version is a deletion (no content): the resource is gone.
    deleted: bool = False
    # The version's time as the store orders versions by (for a deletion, when it
    # was deleted).
    last_updated: str | None = None


def _version(row: Row[Any, Any, Any, Any, Any, Any, Any, Any]) -> StoredVersion:
    return StoredVersion(
        resource_type=row.resource_type,
        resource_id=row.resource_id,
        version_id=str(row.id),
        version_key=row.version_key,
        received_at=row.received_at,
        content=row.content,
        deleted=bool(row.deleted),
        last_updated=row.last_updated,
    )


_COLUMNS = (
    raw_resources.c.id,
    raw_resources.c.resource_type,
    raw_resources.c.resource_id,
    raw_resources.c.version_key,
    raw_resources.c.received_at,
    raw_resources.c.content,
    raw_resources.c.deleted,
    raw_resources.c.last_updated,
)


# The lookups a push makes for each entry, built once: constructing the statement
# cost more than running it.
_CURRENT = (
    select(*_COLUMNS)
    .join(current_resources, current_resources.c.raw_id == raw_resources.c.id)
    .where(
        current_resources.c.source == bindparam("source"),
        current_resources.c.resource_type == bindparam("resource_type"),
        current_resources.c.resource_id == bindparam("resource_id"),
    )
)
_BY_IDENTIFIER = select(resource_identifiers.c.resource_id).where(
    resource_identifiers.c.source == bindparam("source"),
    resource_identifiers.c.resource_type == bindparam("resource_type"),
    resource_identifiers.c.value == bindparam("value"),
)
_BY_SYSTEM_AND_IDENTIFIER = _BY_IDENTIFIER.where(
    resource_identifiers.c.system == bindparam("system")
)


def current_version(
    conn: Connection, source: str, resource_type: str, resource_id: str
) -> StoredVersion | None:
    row = conn.execute(
        _CURRENT,
        {"source": source, "resource_type": resource_type, "resource_id": resource_id},
    ).first()
    return _version(row) if row is not None else None


def current_versions(
    conn: Connection, source: str, keys: list[tuple[str, str]]
) -> dict[tuple[str, str], StoredVersion]:
    """Current versions of many (type, id) at once."""
    if not keys:
        return {}
    found: dict[tuple[str, str], StoredVersion] = {}
    for group in key_groups(
        (current_resources.c.resource_type, current_resources.c.resource_id), keys
    ):
        rows = conn.execute(
            select(*_COLUMNS)
            .join(current_resources, current_resources.c.raw_id == raw_resources.c.id)
            .where(current_resources.c.source == source, group)
        )
        found.update({(row.resource_type, row.resource_id): _version(row) for row in rows})
    return found


def version(
    conn: Connection, source: str, resource_type: str, resource_id: str, version_id: str
) -> StoredVersion | None:
    if not version_id.isdigit():
        return None
    row = conn.execute(
        select(*_COLUMNS).where(
            raw_resources.c.id == int(version_id),
            raw_resources.c.source == source,
            raw_resources.c.resource_type == resource_type,
            raw_resources.c.resource_id == resource_id,
        )
    ).first()
    return _version(row) if row is not None else None


def version_by_key(conn: Connection, raw_key: str) -> StoredVersion | None:
    row = conn.execute(select(*_COLUMNS).where(raw_resources.c.raw_key == raw_key)).first()
    return _version(row) if row is not None else None


def held_by_another_source(
    conn: Connection, source: str, resource_type: str, resource_id: str
) -> bool:
    """Whether a source other than `source` holds a live (type, id). Rarely asked (a
    delete of what the asking source never held); no index leads with (type, id), so it
    reads the current rows of that type."""
    row = conn.execute(
        select(current_resources.c.source)
        .where(
            current_resources.c.resource_type == resource_type,
            current_resources.c.resource_id == resource_id,
            current_resources.c.source != source,
            current_resources.c.deleted.is_(False),
        )
        .limit(1)
    ).first()
    return row is not None


def history(
    conn: Connection, source: str, resource_type: str, resource_id: str, limit: int
) -> list[StoredVersion]:
    """A resource's versions, deletions among them, newest first (at most `limit`)."""
    rows = conn.execute(
        select(*_COLUMNS)
        .where(
            raw_resources.c.source == source,
            raw_resources.c.resource_type == resource_type,
            raw_resources.c.resource_id == resource_id,
        )
        .order_by(raw_resources.c.id.desc())
        .limit(limit)
    ).all()
    return [_version(row) for row in rows]


def ids_by_identifier(
    conn: Connection, source: str, resource_type: str, system: str | None, value: str
) -> list[str]:
    """Ids of current resources carrying the identifier (any system when `system` is None)."""
    params = {"source": source, "resource_type": resource_type, "value": value}
    if system is None:
        found = conn.execute(_BY_IDENTIFIER, params)
    else:
        found = conn.execute(_BY_SYSTEM_AND_IDENTIFIER, {**params, "system": system})
    return sorted(set(found.scalars().all()))


def ids_by_content(
    conn: Connection, source: str, keys: list[tuple[str, str]]
) -> dict[tuple[str, str], list[str]]:
    """(type, content hash) -> ids of current pushed resources with that content."""
    if not keys:
        return {}
    found: dict[tuple[str, str], list[str]] = {}
    for group in key_groups((pushed_content.c.resource_type, pushed_content.c.content_hash), keys):
        rows = conn.execute(
            select(
                pushed_content.c.resource_type,
                pushed_content.c.content_hash,
                pushed_content.c.resource_id,
            ).where(pushed_content.c.source == source, group)
        )
        for row in rows:
            found.setdefault((row.resource_type, row.content_hash), []).append(row.resource_id)
    return {key: sorted(ids) for key, ids in found.items()}


@dataclass(frozen=True, slots=True)
class PushedIndexEntry:
    """What the indexes hold for one pushed resource's current version."""

    resource_type: str
    resource_id: str
    content_hash: str
    identifiers: tuple[tuple[str, str], ...]


def drop_index_entries(conn: Connection, source: str, keys: list[tuple[str, str]]) -> None:
    """These (type, id) are found by no identifier and no content any more (deleted:
    FHIR's search no longer finds a deleted resource)."""
    for table in (resource_identifiers, pushed_content):
        for group in key_groups((table.c.resource_type, table.c.resource_id), keys):
            conn.execute(delete(table).where(table.c.source == source, group))


def replace_index_entries(conn: Connection, source: str, entries: list[PushedIndexEntry]) -> None:
    """The new current versions' identifiers and content hashes replace the old ones."""
    if not entries:
        return
    keys = [(entry.resource_type, entry.resource_id) for entry in entries]
    drop_index_entries(conn, source, keys)
    insert_ignore(
        conn,
        resource_identifiers,
        [
            {
                "source": source,
                "resource_type": entry.resource_type,
                "system": system,
                "value": value,
                "resource_id": entry.resource_id,
            }
            for entry in entries
            for system, value in entry.identifiers
        ],
        keys=("source", "resource_type", "system", "value", "resource_id"),
    )
    insert_ignore(
        conn,
        pushed_content,
        [
            {
                "source": source,
                "resource_type": entry.resource_type,
                "content_hash": entry.content_hash,
                "resource_id": entry.resource_id,
            }
            for entry in entries
        ],
        keys=("source", "resource_type", "content_hash", "resource_id"),
    )
