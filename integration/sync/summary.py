"""What one sync run did: per resource type and for the whole source."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from integration.ingest.pipeline import IngestSummary
from integration.journey.update import JourneyUpdate


@dataclass(slots=True)
class TypeSync:
    resource_type: str
    pages: int = 0
    fetched: int = 0
    full: bool = True
    checkpoint: str | None = None
    catch_up_pass: bool = False
    slices: int = 0
    skipped_not_members: int = 0
    # Read from the server's type history (`_history?_since=`), not by search.
    history: bool = False
    # Deletions the source reported (history DELETE entries, Bulk deleted files).
    deleted: int = 0
    # A reconciliation listing ran, whole, this sync.
    reconciled: bool = False
    error: str | None = None
    warnings: list[str] = field(default_factory=list)


@dataclass(slots=True)
class SyncSummary:
    source: str
    types: dict[str, TypeSync] = field(default_factory=dict)
    stored: IngestSummary | None = None
    derive: JourneyUpdate = field(default_factory=JourneyUpdate)
    retries: int = 0
    error: str | None = None
    seconds: float = 0.0
    # Source-level news: a resumed or restarted export, errors the server reported.
    notes: list[str] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return self.error is not None or any(t.error for t in self.types.values())


def type_counts(state: TypeSync, stored: IngestSummary) -> dict[str, Any]:
    """What `journey sources` shows of a type's last run."""
    counts = stored.by_type.get(state.resource_type)
    return {
        "pages": state.pages,
        "fetched": state.fetched,
        "new": counts.new if counts else 0,
        "changed": counts.changed if counts else 0,
        "unchanged": counts.unchanged if counts else 0,
        "quarantined": counts.quarantined if counts else 0,
        "full": state.full,
        "skipped_not_members": state.skipped_not_members,
        "deleted": state.deleted,
        "reconciled": state.reconciled,
        "warnings": state.warnings[:5],
    }
