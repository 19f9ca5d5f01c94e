"""Deletions seen in pulls, as raw-store tombstones.

A REST source's history DELETE entries, a Bulk export's deleted files and a
reconciliation listing's missing ids all become `IncomingResource(deleted=True)`
written through the raw store, whose ordering rule (a tombstone replaces a live
version as new or older, and only a strictly newer version replaces it) and
the journey update (`integration.journey.withdrawal`) do the rest.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection

from connectors.rest.search import Deletion
from integration.ingest.intake import last_updated_of
from integration.store.raw import IncomingResource, WriteOutcome, write_resources


def tombstone(
    source: str,
    resource_type: str,
    deletion: Deletion,
    fallback_time: str | None,
    origin: str | None,
    location: str | None,
) -> IncomingResource:
    """A deletion at the source's time for it (else `fallback_time`), keyed by the
    source's version of the deletion (else its time) so a re-read one is stored once."""
    moment = deletion.when or fallback_time
    when = last_updated_of({"meta": {"lastUpdated": moment}}) if moment else None
    return IncomingResource(
        source=source,
        resource_type=resource_type,
        resource_id=deletion.resource_id,
        version_key=(
            f"v:{deletion.version_id[:64]}" if deletion.version_id else f"d:{when or '?'}"
        ),
        last_updated=when,
        subject_id=None,
        origin=origin,
        location=location,
        content="{}",
        deleted=True,
    )


def write_tombstones(
    conn: Connection, tombstones: Sequence[IncomingResource], now: str
) -> dict[str, int]:
    """Store the tombstones; per type, how many were not already there."""
    counts: dict[str, int] = {}
    for item, outcome in zip(tombstones, write_resources(conn, tombstones, now), strict=True):
        if outcome is not WriteOutcome.UNCHANGED:
            counts[item.resource_type] = counts.get(item.resource_type, 0) + 1
    return counts
