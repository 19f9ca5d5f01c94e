"""The one clock of the integration layer: store times are ISO 8601 UTC text, to the
second, so that they sort the same on every backend."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, date, datetime, time, timedelta

from mappings.dates import ISO_FORMAT


def utc_now() -> str:
    return datetime.now(UTC).strftime(ISO_FORMAT)


def day_bound(day: date, end: bool) -> str:
    """A date as a bound of a time range: the start of that day in UTC, or for an end,
    the start of the next (so the day is included)."""
    return datetime.combine(day + timedelta(days=1) if end else day, time(), UTC).strftime(
        ISO_FORMAT
    )


async def sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    """Sleep `seconds`, or less if `stop` is set meanwhile."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)
