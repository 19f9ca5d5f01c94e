"""FHIR date, dateTime and instant strings read as time intervals.

FHIR allows partial dates ("2025", "2025-01") and real servers also send
dateTimes without a timezone ("2025-01-28T00:00:00") although R4 forbids it.
Neither is rejected: a partial date stands for the whole interval it names,
and a naive time is read as UTC, each with a warning that names the path.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

_DATE_TIME = re.compile(
    r"^(?P<year>\d{4})(?:-(?P<month>\d{2})(?:-(?P<day>\d{2})"
    r"(?:T(?P<hour>\d{2}):(?P<minute>\d{2})(?::(?P<second>\d{2})(?:\.(?P<fraction>\d+))?)?"
    r"(?P<tz>Z|[+-]\d{2}:\d{2})?)?)?)?$"
)
ISO_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


@dataclass(frozen=True, slots=True)
class Interval:
    """[start, end) in UTC, with a warning when the input needed reading."""

    start: datetime
    end: datetime
    warning: str | None = None
    partial: bool = False

    @property
    def start_iso(self) -> str:
        return utc_iso(self.start)

    @property
    def end_iso(self) -> str:
        return utc_iso(self.end)


def utc_iso(moment: datetime) -> str:
    """ISO 8601 with a Z, to the second (the same as strftime(ISO_FORMAT), several times faster)."""
    return moment.isoformat(timespec="seconds")[:19] + "Z"


class FhirDateError(ValueError):
    """A string that is no FHIR date, dateTime or instant at all."""


def parse_interval(value: str, path: str) -> Interval:
    """Read a FHIR date/dateTime/instant as the interval it stands for.

    `path` (e.g. "Encounter.period.start") names the element in warnings and
    errors; the value itself is never repeated in them.
    """
    match = _DATE_TIME.match(value)
    if match is None:
        raise FhirDateError(f"{path}: not a FHIR date or dateTime")
    parts = match.groupdict()
    year = int(parts["year"])
    try:
        if parts["month"] is None:
            start = datetime(year, 1, 1, tzinfo=UTC)
            return Interval(
                start, start.replace(year=year + 1), f"{path}: partial date (year only)", True
            )
        month = int(parts["month"])
        if parts["day"] is None:
            start = datetime(year, month, 1, tzinfo=UTC)
            end = datetime(year + (month == 12), month % 12 + 1, 1, tzinfo=UTC)
            return Interval(start, end, f"{path}: partial date (year and month only)", True)
        day_start = datetime(year, month, int(parts["day"]), tzinfo=UTC)
        if parts["hour"] is None:
            return Interval(day_start, day_start + timedelta(days=1))
        naive = day_start.replace(
            hour=int(parts["hour"]),
            minute=int(parts["minute"]),
            second=int(parts["second"] or 0),
        )
    except ValueError as exc:
        raise FhirDateError(f"{path}: not a real calendar date") from exc
    tz = parts["tz"]
    if tz is None:
        warning = f"{path}: dateTime without timezone, read as UTC"
        return Interval(naive, naive + timedelta(seconds=1), warning)
    offset = timedelta(0)
    if tz != "Z":
        sign = 1 if tz[0] == "+" else -1
        offset = sign * timedelta(hours=int(tz[1:3]), minutes=int(tz[4:6]))
    moment = naive - offset
    return Interval(moment, moment + timedelta(seconds=1))


def period_interval(
    start: object, end: object, path: str
) -> tuple[str | None, str | None, list[str]]:
    """The (start, end) ISO strings of a FHIR Period, and warnings.

    A missing or unreadable end leaves the end open (None).
    """
    warnings: list[str] = []
    start_iso: str | None = None
    end_iso: str | None = None
    if isinstance(start, str):
        try:
            interval = parse_interval(start, f"{path}.start")
            start_iso = interval.start_iso
            if end is None and interval.partial:
                end_iso = interval.end_iso
            if interval.warning:
                warnings.append(interval.warning)
        except FhirDateError as exc:
            warnings.append(str(exc))
    if isinstance(end, str):
        try:
            interval = parse_interval(end, f"{path}.end")
            # A time is the moment the period ends; a date closes at the end of what it names.
            end_iso = interval.start_iso if "T" in end else interval.end_iso
            if interval.warning:
                warnings.append(interval.warning)
        except FhirDateError as exc:
            warnings.append(str(exc))
    return start_iso, end_iso, warnings
