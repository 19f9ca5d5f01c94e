"""Checkpoint arithmetic for REST syncs: pure functions, no I/O.

A checkpoint is the highest `meta.lastUpdated` stored for a source's
resource type, as an ISO UTC instant to the millisecond when the server gives
fractions of a second, else to the second. The next sync asks for
`_lastUpdated=gt<checkpoint - overlap>` at the checkpoint's own precision.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from connectors.rest.search import SearchPage
from integration.ingest.intake import last_updated_of
from integration.store.sync_state import later_checkpoint
from mappings.dates import parse_interval, utc_iso

# The fraction of a second in an ISO dateTime: "12:00:05.250Z" -> "250".
_FRACTION = re.compile(r"T\d{2}:\d{2}:\d{2}\.(\d+)")


def since(checkpoint: str, overlap_seconds: float) -> str:
    """The `_lastUpdated=gt` value: the checkpoint less the overlap, to the checkpoint's
    own precision. A server reads gt<second> as after that whole second, so a
    checkpoint kept only to the second would miss the rest of that second."""
    moment = parse_interval(checkpoint, "checkpoint").start - timedelta(seconds=overlap_seconds)
    return with_fraction(utc_iso(moment), checkpoint)


def checkpoint_of(resource: dict[str, Any]) -> str | None:
    """meta.lastUpdated as a checkpoint: UTC, to the millisecond when the server gives
    fractions of a second (as servers that keep milliseconds do), else to the second."""
    to_the_second = last_updated_of(resource)
    if to_the_second is None:
        return None
    return with_fraction(to_the_second, resource["meta"]["lastUpdated"])


def with_fraction(to_the_second: str, given: str) -> str:
    """A UTC instant to the second, with `given`'s fraction of a second (to the
    millisecond), if it has one. Offsets are whole minutes: the fraction is the same."""
    fraction = _FRACTION.search(given)
    if fraction is None:
        return to_the_second
    return f"{to_the_second[:-1]}.{(fraction.group(1) + '00')[:3]}Z"


def highest_last_updated(page: SearchPage, current: str | None) -> str | None:
    """The checkpoint once `page` is stored: never below `current`."""
    best = current
    for _, resource in page.resources:
        best = later_checkpoint(best, checkpoint_of(resource))
    for _, deletion in page.deleted:
        if deletion.when is not None:
            best = later_checkpoint(best, checkpoint_of({"meta": {"lastUpdated": deletion.when}}))
    return best


def first_updated(bundle: dict[str, Any], resource_type: str) -> datetime | None:
    """meta.lastUpdated of a search's first resource, to the millisecond."""
    entries = bundle.get("entry")
    for entry in entries if isinstance(entries, list) else []:
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if isinstance(resource, dict) and resource.get("resourceType") == resource_type:
            meta = resource.get("meta")
            value = meta.get("lastUpdated") if isinstance(meta, dict) else None
            try:
                moment = datetime.fromisoformat(value) if isinstance(value, str) else None
            except ValueError:
                return None
            return moment if moment is not None and moment.tzinfo is not None else None
    return None


def iso_ms(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
