"""Time parameters of the API: a date or a dateTime with a timezone, as ISO UTC."""

from __future__ import annotations

from datetime import UTC, date, datetime

from integration.api.problems import ApiProblem
from integration.clock import day_bound
from mappings.dates import ISO_FORMAT


def time_bound(value: str | None, name: str, end: bool) -> str | None:
    """A from/to parameter as ISO UTC: a date covers its whole day; a dateTime needs a timezone."""
    if value is None:
        return None
    try:
        if len(value) == 10:
            return day_bound(date.fromisoformat(value), end)
        moment = datetime.fromisoformat(value)
        if moment.tzinfo is None:
            raise ValueError("no timezone")
    except ValueError as exc:
        raise ApiProblem(
            400,
            "Bad Request",
            f"{name} must be a date (YYYY-MM-DD) or a dateTime with timezone",
            invalid_params=[{"in": "query", "name": name, "reason": str(exc)}],
        ) from exc
    return moment.astimezone(UTC).strftime(ISO_FORMAT)
