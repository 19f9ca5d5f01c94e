"""The raw zone: every resource kept as received, and the quarantine for what was rejected.

Writes are idempotent. A raw row's key is (source, type, id, version) where
version is `meta.versionId` when the sender gave one and a hash of the
content otherwise, so a replayed file or page inserts nothing. The newest
version per (source, type, id) is the *current* one, which is what mapping
reads; it is flagged `needs_derive` until the journey zone has caught up.

A deletion is a version too (`deleted`, content `{}`): the current row then is the
resource's tombstone. A version arriving later replaces a live current version when it
is as new or newer (by `last_updated`), and a tombstone only when it is strictly newer:
a create or update at or before the deletion's time is history that arrived late. A
version with no `last_updated` counts as the newest, as it always has.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import orjson
from sqlalchemy import (
    Connection,
    Text,
    bindparam,
    func,
    select,
    update,
)

from integration.derived_types import derived_types
from integration.store.bulk_copy import STAGE_COLUMNS, copy_versions, current_raw_keys
from integration.store.current_version import CURRENT_KEYS, CURRENT_UPDATED, replaces_current
from integration.store.keys import in_keys, key_groups
from integration.store.quarantine import (
    FIXED,
    INTAKE,
    QUARANTINE_CONTENT_LIMIT,
    intake_key,
    seen_again,
)
from integration.store.schema import current_resources, quarantine, raw_resources
from integration.store.text import visible_nul
from integration.store.upsert import (
    execute_many,
    insert_statement,
    upsert_statement,
)

# Only these types feed the journey zone; others are kept raw and need no derivation.
DERIVED_TYPES = derived_types()


class WriteOutcome(StrEnum):
    NEW = "new"
    CHANGED = "changed"
    UNCHANGED = "unchanged"


@dataclass(frozen=True, slots=True)
class IncomingResource:
    """A validated resource on its way into the raw zone."""

    source: str
    resource_type: str
    resource_id: str
    version_key: str
    last_updated: str | None
    subject_id: str | None
    origin: str | None
    location: str | None
    content: str
    warnings: tuple[str, ...] = ()
    # A deletion: no content (`{}`), and the resource is gone once it is current.
    deleted: bool = False

    @property
    def raw_key(self) -> str:
        return f"{self.source}/{self.resource_type}/{self.resource_id}/{self.version_key}"


@dataclass(frozen=True, slots=True)
class Rejected:
    """Something that could not be stored as a resource, and why."""

    source: str
    origin: str | None
    location: str | None
    error: str
    resource_type: str | None = None
    resource_id: str | None = None
    fhir_path: str | None = None
    content: bytes | None = None
    # `content` is only the head of what was rejected (an over-limit line or file).
    content_truncated: bool = False
    # Found in a file read whole (`journey import`): its entry is kept per file.
    in_file: bool = False

    @property
    def stored_content(self) -> str:
        """The content as the quarantine keeps it: at most QUARANTINE_CONTENT_LIMIT bytes,
        NUL kept visible as an escape (PostgreSQL text cannot hold it)."""
        return visible_nul(
            (self.content or b"")[:QUARANTINE_CONTENT_LIMIT].decode("utf-8", "replace")
        )

    @property
    def key(self) -> str:
        """The same rejected content from one source is one entry, wherever it was found."""
        return intake_key(
            self.source,
            self.stored_content,
            self.origin,
            self.location,
            self.error,
            self.content_truncated or len(self.content or b"") > QUARANTINE_CONTENT_LIMIT,
            self.in_file,
        )


def version_key(resource: dict[str, Any]) -> str:
    """`v:<versionId>` when the sender versions resources, else a content hash."""
    meta = resource.get("meta")
    if isinstance(meta, dict) and isinstance(meta.get("versionId"), str):
        return "v:" + str(meta["versionId"])[:64]
    canonical = orjson.dumps(resource, option=orjson.OPT_SORT_KEYS)
    return "h:" + hashlib.sha256(canonical).hexdigest()[:40]


def write_resources(
    conn: Connection,
    batch: Sequence[IncomingResource],
    received_at: str,
    by_copy: bool = False,
) -> list[WriteOutcome]:
    """Store a batch; returns, per item, whether it was new, a new version, or already there.
    `by_copy` (PostgreSQL only) writes the new versions with COPY (`bulk_copy`): the
    same rows, cheaper for large batches."""
    if not batch:
        return []
    keys = [item.raw_key for item in batch]
    identities = [(item.source, item.resource_type, item.resource_id) for item in batch]
    current = current_raw_keys(conn, identities) if by_copy else _current_raw_keys(conn, identities)
    # Every stored version's identity has a current row, so only a version other
    # than the current one (re-sent older versions, rare) needs looking up by key.
    existing = set(current.values())
    others = [
        key
        for key, item in zip(keys, batch, strict=True)
        if current.get((item.source, item.resource_type, item.resource_id), key) != key
    ]
    if others:
        existing.update(
            conn.execute(
                select(raw_resources.c.raw_key).where(
                    raw_resources.c.raw_key.in_(
                        bindparam(None, others, expanding=True, type_=Text())
                    )
                )
            ).scalars()
        )
    outcomes: list[WriteOutcome] = []
    fresh: dict[str, IncomingResource] = {}
    for key, item in zip(keys, batch, strict=True):
        if key in existing:
            outcomes.append(WriteOutcome.UNCHANGED)
            continue
        existing.add(key)
        identity = (item.source, item.resource_type, item.resource_id)
        outcomes.append(WriteOutcome.CHANGED if identity in current else WriteOutcome.NEW)
        current[identity] = key
        fresh[key] = item
    if fresh:
        _insert_fresh(conn, fresh, received_at, by_copy)
    return outcomes


def _current_raw_keys(
    conn: Connection, identities: Sequence[tuple[str, str, str]]
) -> dict[tuple[str, str, str], str]:
    """(source, type, id) -> the raw key of its current version, for the batch's resources."""
    table = current_resources
    found: dict[tuple[str, str, str], str] = {}
    for group in key_groups(
        (table.c.source, table.c.resource_type, table.c.resource_id), identities
    ):
        rows = conn.execute(
            select(
                table.c.source, table.c.resource_type, table.c.resource_id, raw_resources.c.raw_key
            )
            .join(raw_resources, raw_resources.c.id == table.c.raw_id)
            .where(group)
        )
        found.update({(row[0], row[1], row[2]): row[3] for row in rows})
    return found


def _insert_fresh(
    conn: Connection, fresh: dict[str, IncomingResource], received_at: str, by_copy: bool
) -> None:
    if by_copy:
        copy_versions(conn, stage_rows(fresh), received_at)
    else:
        # Plain executemany: INSERT ... RETURNING in parameter order makes SQLAlchemy
        # send the rows one statement at a time.
        execute_many(
            conn,
            raw_insert_statement(conn),
            [raw_row(key, item, received_at) for key, item in fresh.items()],
        )
        execute_many(
            conn,
            current_upsert_statement(conn),
            [current_row(key, item) for key, item in fresh.items()],
        )
    # A deletion fixes nothing that was quarantined.
    _resolve_quarantine(conn, [item for item in fresh.values() if not item.deleted], received_at)


def raw_insert_statement(conn: Connection) -> Any:
    """Store a version. One another process stored since we looked (two syncs of one
    source) is already there: skipped, not an error."""
    return insert_statement(conn, raw_resources).on_conflict_do_nothing(index_elements=["raw_key"])


def raw_row(key: str, item: IncomingResource, received_at: str) -> dict[str, Any]:
    return {
        "raw_key": key,
        "source": item.source,
        "resource_type": item.resource_type,
        "resource_id": item.resource_id,
        "version_key": item.version_key,
        "last_updated": item.last_updated,
        "received_at": received_at,
        "origin": item.origin,
        "location": item.location,
        "content": item.content,
        "warnings": orjson.dumps(list(item.warnings)).decode() if item.warnings else None,
        "deleted": item.deleted,
    }


def current_upsert_statement(conn: Connection) -> Any:
    """Point (source, type, id) at a newly stored version, unless that version is older
    than the current one (an older version arriving late), or no newer than the
    deletion the current one is (a create the source deleted before it arrived)."""
    return upsert_statement(
        conn,
        current_resources,
        keys=CURRENT_KEYS,
        update=CURRENT_UPDATED,
        where=replaces_current,
        # The new raw row's id, found by its key inside the statement: no round trip.
        computed={
            "raw_id": select(raw_resources.c.id)
            .where(raw_resources.c.raw_key == bindparam("raw_key"))
            .scalar_subquery()
        },
    )


def lift_deletions(conn: Connection, source: str, keys: Sequence[tuple[str, str]]) -> None:
    """These (type, id) tombstones no longer bar what comes next, whatever its time: a
    push re-creating a deleted resource is newer by arrival (the push lock orders
    pushes), even within the second the deletion was stamped with."""
    if keys:
        conn.execute(
            update(current_resources)
            .where(
                current_resources.c.source == source,
                current_resources.c.deleted.is_(True),
                in_keys((current_resources.c.resource_type, current_resources.c.resource_id), keys),
            )
            .values(last_updated=None)
        )


def current_row(key: str, item: IncomingResource) -> dict[str, Any]:
    return {
        "source": item.source,
        "resource_type": item.resource_type,
        "resource_id": item.resource_id,
        "raw_key": key,
        "last_updated": item.last_updated,
        "subject_id": item.subject_id,
        "needs_derive": item.resource_type in DERIVED_TYPES,
        "deleted": item.deleted,
    }


def stage_rows(fresh: dict[str, IncomingResource]) -> list[tuple[Any, ...]]:
    """The new versions as `bulk_copy` stages them (`STAGE_COLUMNS`): the batch's order
    (`seq`), which version of its resource in the batch each is (`round`), then the
    values `raw_row` and `current_row` give the row-by-row path."""
    seen: dict[tuple[str, str, str], int] = {}
    rows = []
    for seq, (key, item) in enumerate(fresh.items()):
        identity = (item.source, item.resource_type, item.resource_id)
        seen[identity] = seen.get(identity, 0) + 1
        # received_at is the same for the whole batch: the move out of staging sets it.
        values = {**raw_row(key, item, ""), **current_row(key, item)}
        rows.append((seq, seen[identity], *(values[name] for name in STAGE_COLUMNS[2:])))
    return rows


def _resolve_quarantine(conn: Connection, fresh: list[IncomingResource], resolved_at: str) -> None:
    """A resource that now stores fine closes the intake entries it left earlier."""
    sources = {item.source for item in fresh}
    open_count = conn.execute(
        select(func.count())
        .select_from(quarantine)
        .where(
            quarantine.c.resolved_at.is_(None),
            quarantine.c.stage == INTAKE,
            quarantine.c.source.in_(sources),
        )
    ).scalar_one()
    if not open_count:
        return
    for source in sources:
        mine = [(item.resource_type, item.resource_id) for item in fresh if item.source == source]
        conn.execute(
            update(quarantine)
            .where(
                quarantine.c.resolved_at.is_(None),
                quarantine.c.stage == INTAKE,
                quarantine.c.source == source,
                in_keys(
                    (quarantine.c.resource_type, quarantine.c.resource_id),
                    mine,
                ),
            )
            .values(resolved_at=resolved_at, resolution=FIXED, resolution_note="stored since")
        )


def write_rejections(conn: Connection, rejected: Sequence[Rejected], received_at: str) -> int:
    """Quarantine rejected input. Content seen before is the same entry: its place and
    time are brought up to date, and an entry closed as fixed opens again (an entry an
    operator dismissed stays closed). Returns the entries added."""
    if not rejected:
        return 0
    rows: dict[str, dict[str, Any]] = {}
    for item in rejected:
        content = item.stored_content
        key = item.key
        rows[key] = {
            "quarantine_key": key,
            "stage": INTAKE,
            "source": item.source,
            # What a rejected input says about itself can hold NUL (PostgreSQL refuses it).
            "origin": visible_nul(item.origin),
            "location": visible_nul(item.location),
            "resource_type": visible_nul(item.resource_type),
            "resource_id": visible_nul(item.resource_id),
            "fhir_path": visible_nul(item.fhir_path),
            "error": visible_nul(item.error),
            "content": content,
            "content_truncated": item.content_truncated
            or len(item.content or b"") > QUARANTINE_CONTENT_LIMIT,
            "received_at": received_at,
            "last_seen_at": received_at,
            "resolved_at": None,
        }
    return seen_again(conn, list(rows.values()), received_at)


def live_ids(conn: Connection, source: str, resource_type: str) -> set[str]:
    """The ids of a source's resources of one type that are held and not deleted."""
    table = current_resources
    return set(
        conn.execute(
            select(table.c.resource_id).where(
                table.c.source == source,
                table.c.resource_type == resource_type,
                table.c.deleted.is_(False),
            )
        ).scalars()
    )
