"""The quarantine: what could not be stored (intake) or mapped (mapping), until it is
fixed or an operator closes it with a reason.

An intake entry is keyed by its source and content (and its file, for a file read
whole): the same bad line met again, at the same line or another, is the same entry,
and its place is brought up to date (an entry an operator dismissed stays closed;
any other reopens). A mapping entry is keyed by the resource version whose
derivation failed.
Entries close as `fixed` by themselves: an intake entry when the same resource
(type and id) later stores fine or its content is no longer in a file read again
whole; a mapping entry when that resource later maps. An operator closes one as
`dismissed` (will not be fixed) or `resolved` (fixed elsewhere, for example a file
deleted), always with a note.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Text, bindparam, func, select, update

from integration.errors import IntegrationError
from integration.store.keys import in_keys
from integration.store.schema import quarantine
from integration.store.text import visible_nul
from integration.store.upsert import insert_ignore

INTAKE = "intake"
MAPPING = "mapping"
FIXED = "fixed"
DISMISSED = "dismissed"
RESOLVED = "resolved"
OPERATOR_RESOLUTIONS = (DISMISSED, RESOLVED)
MAX_NOTE = 2000
# Content kept per entry; beyond it `content_truncated` says it was cut.
QUARANTINE_CONTENT_LIMIT = 64 * 1024


def intake_key(
    source: str,
    content: str,
    origin: str | None,
    location: str | None,
    error: str,
    truncated: bool = False,
    in_file: bool = False,
) -> str:
    """Content decides, within its file when it came from one read whole (so that the
    file read again closes what it no longer holds, and the same content left in another
    file stays open); input with no content at all (an unreadable file) is its place;
    the head of cut content is told apart by its error (which says the size)."""
    # Kept in step with migration 0008, which re-keyed the entries made before it.
    digest = hashlib.sha256()
    parts = (
        ("intake", source, (origin or "") if in_file else "", content, error if truncated else "")
        if content
        else ("intake-place", source, origin or "", location or "", error)
    )
    for part in parts:
        digest.update(part.encode() + b"\x00")
    return digest.hexdigest()


def mapping_key(source: str, resource_type: str, resource_id: str, version_key: str) -> str:
    digest = hashlib.sha256()
    for part in (MAPPING, source, resource_type, resource_id, version_key):
        digest.update(part.encode() + b"\x00")
    return digest.hexdigest()


def seen_again(conn: Connection, rows: list[dict[str, Any]], now: str) -> int:
    """Insert new entries; for keys already held, bring place and time up to date and
    reopen an entry closed as fixed. Returns the entries added."""
    keys = [row["quarantine_key"] for row in rows]
    held = set(
        conn.execute(
            select(quarantine.c.quarantine_key).where(
                quarantine.c.quarantine_key.in_(bindparam(None, keys, expanding=True, type_=Text()))
            )
        ).scalars()
    )
    added = insert_ignore(
        conn,
        quarantine,
        [row for row in rows if row["quarantine_key"] not in held],
        keys=("quarantine_key",),
    )
    seen = [row for row in rows if row["quarantine_key"] in held]
    if seen:
        conn.execute(
            update(quarantine)
            .where(quarantine.c.quarantine_key == bindparam("key"))
            .values(
                origin=bindparam("origin"),
                location=bindparam("location"),
                error=bindparam("error"),
                last_seen_at=now,
            ),
            [
                {
                    "key": row["quarantine_key"],
                    "origin": row["origin"],
                    "location": row["location"],
                    "error": row["error"],
                }
                for row in seen
            ],
        )
        conn.execute(
            update(quarantine)
            .where(
                quarantine.c.quarantine_key.in_(
                    bindparam(None, [row["quarantine_key"] for row in seen], expanding=True)
                ),
                quarantine.c.resolution.in_((FIXED, RESOLVED)),
            )
            .values(resolved_at=None, resolution=None, resolution_note=None, resolved_by=None)
        )
    return added


@dataclass(frozen=True, slots=True)
class MappingFailure:
    """A stored resource whose derivation failed, and how (never a value from it)."""

    source: str
    resource_type: str
    resource_id: str
    version_key: str
    error: str
    content: str


def record_mapping_failures(conn: Connection, failures: Sequence[MappingFailure], now: str) -> None:
    seen_again(
        conn,
        [
            {
                "quarantine_key": mapping_key(
                    f.source, f.resource_type, f.resource_id, f.version_key
                ),
                "stage": MAPPING,
                "source": f.source,
                "origin": None,
                "location": f.version_key,
                "resource_type": f.resource_type,
                "resource_id": f.resource_id,
                "fhir_path": None,
                "error": f.error,
                "content": visible_nul(f.content[:QUARANTINE_CONTENT_LIMIT]),
                "content_truncated": len(f.content) > QUARANTINE_CONTENT_LIMIT,
                "received_at": now,
                "last_seen_at": now,
                "resolved_at": None,
            }
            for f in failures
        ],
        now,
    )


def close_mapped(conn: Connection, keys: Sequence[tuple[str, str, str]], now: str) -> None:
    """Resources (source, type, id) that just mapped fine close their mapping entries."""
    if not keys or not _any_open(conn, MAPPING):
        return
    conn.execute(
        update(quarantine)
        .where(
            quarantine.c.resolved_at.is_(None),
            quarantine.c.stage == MAPPING,
            in_keys(
                (quarantine.c.source, quarantine.c.resource_type, quarantine.c.resource_id),
                keys,
            ),
        )
        .values(resolved_at=now, resolution=FIXED, resolution_note="mapped since")
    )


def close_absent(conn: Connection, source: str, origin: str, present: set[str], now: str) -> int:
    """A file was read again whole: its open intake entries whose content is no longer
    in it are fixed (a bad line corrected or deleted). Returns the entries closed."""
    open_keys = set(
        conn.execute(
            select(quarantine.c.quarantine_key).where(
                quarantine.c.resolved_at.is_(None),
                quarantine.c.stage == INTAKE,
                quarantine.c.source == source,
                quarantine.c.origin == origin,
            )
        ).scalars()
    )
    gone = sorted(open_keys - present)
    if gone:
        conn.execute(
            update(quarantine)
            .where(
                quarantine.c.quarantine_key.in_(bindparam(None, gone, expanding=True, type_=Text()))
            )
            .values(resolved_at=now, resolution=FIXED, resolution_note="no longer in the file")
        )
    return len(gone)


class QuarantineEntryNotFound(IntegrationError, LookupError):
    """No quarantine entry with the id asked for."""


def close_entry(
    conn: Connection, entry_id: int, resolution: str, note: str, by: str, now: str
) -> dict[str, Any]:
    """An operator closes an entry (open or not) as dismissed or resolved, with a note."""
    if resolution not in OPERATOR_RESOLUTIONS:
        raise ValueError(f"resolution must be one of {', '.join(OPERATOR_RESOLUTIONS)}")
    note = note.strip()
    if not note or len(note) > MAX_NOTE or "\x00" in note:
        raise ValueError(f"a note of 1-{MAX_NOTE} characters is required")
    done = conn.execute(
        update(quarantine)
        .where(quarantine.c.id == entry_id)
        .values(
            resolved_at=now,
            resolution=resolution,
            resolution_note=note,
            resolved_by=by[:200],
        )
    )
    if done.rowcount != 1:
        raise QuarantineEntryNotFound(f"no quarantine entry {entry_id}")
    return entry(conn, entry_id) or {}


LISTED = (
    quarantine.c.id,
    quarantine.c.stage,
    quarantine.c.source,
    quarantine.c.origin,
    quarantine.c.location,
    quarantine.c.resource_type,
    quarantine.c.resource_id,
    quarantine.c.fhir_path,
    quarantine.c.error,
    quarantine.c.content_truncated,
    quarantine.c.received_at,
    quarantine.c.last_seen_at,
    quarantine.c.resolved_at,
    quarantine.c.resolution,
    quarantine.c.resolution_note,
    quarantine.c.resolved_by,
)


def entries(
    conn: Connection,
    limit: int,
    include_closed: bool = False,
    stage: str | None = None,
    after_id: int = 0,
) -> list[dict[str, Any]]:
    query = select(*LISTED).where(quarantine.c.id > after_id)
    if not include_closed:
        query = query.where(quarantine.c.resolved_at.is_(None))
    if stage is not None:
        query = query.where(quarantine.c.stage == stage)
    return [
        _plain(row._mapping) for row in conn.execute(query.order_by(quarantine.c.id).limit(limit))
    ]


def entry(conn: Connection, entry_id: int) -> dict[str, Any] | None:
    row = conn.execute(
        select(*LISTED, quarantine.c.content).where(quarantine.c.id == entry_id)
    ).first()
    return _plain(row._mapping) if row else None


def _plain(mapping: Mapping[Any, Any]) -> dict[str, Any]:
    # Keys as plain str: orjson refuses the str subclass SQLAlchemy names columns with.
    return {str(key): value for key, value in mapping.items()}


def open_counts(conn: Connection) -> dict[str, int]:
    """Open entries per stage, and all entries an operator closed (for the status views)."""
    counts = {INTAKE: 0, MAPPING: 0}
    for stage, count in conn.execute(
        select(quarantine.c.stage, func.count())
        .where(quarantine.c.resolved_at.is_(None))
        .group_by(quarantine.c.stage)
    ):
        counts[stage] = int(count)
    dismissed = conn.execute(
        select(func.count())
        .select_from(quarantine)
        .where(quarantine.c.resolution.in_(OPERATOR_RESOLUTIONS))
    ).scalar_one()
    return {**counts, "closed_by_operator": int(dismissed)}


def _any_open(conn: Connection, stage: str) -> bool:
    return (
        conn.execute(
            select(quarantine.c.id)
            .where(quarantine.c.resolved_at.is_(None), quarantine.c.stage == stage)
            .limit(1)
        ).first()
        is not None
    )
