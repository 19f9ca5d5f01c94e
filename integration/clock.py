"""The one clock of the integration layer: store times are ISO 8601 UTC text, to the
second, so that they sort the same on every backend."""

from __future__ import annotations

from datetime import UTC, datetime

from mappings.dates import ISO_FORMAT


def utc_now() -> str:
    return datetime.now(UTC).strftime(ISO_FORMAT)
