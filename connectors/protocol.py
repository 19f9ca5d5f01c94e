"""What a connector is: something that pulls raw items in batches, each with the
checkpoint to resume from once the batch is stored.

A connector knows nothing of the store. `integration.sync.connected` runs any
connector: it stores each batch and its checkpoint in one transaction, so a
killed pull resumes after the last stored batch, and updates the journey as
batches arrive. Problems with single items come back as `RawItem`s with a
`problem` (they are quarantined); a failure of the whole pull is raised as a
`ConnectorError`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from connectors.files import RawItem


@dataclass(slots=True)
class PulledBatch:
    """Items of one stream (a resource type, as a rule) and where that stream resumes."""

    stream: str
    items: list[RawItem] = field(default_factory=list)
    # None: this batch does not move the stream's checkpoint.
    checkpoint: str | None = None


class Connector(Protocol):
    def pull(self, checkpoints: Mapping[str, str | None]) -> AsyncIterator[PulledBatch]:
        """Batches of what changed since each stream's checkpoint (None: everything)."""
        ...
