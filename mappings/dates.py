"""FHIR date, dateTime and instant strings read as time intervals.

FHIR allows partial dates ("2025", "2025-01") and real servers also send
dateTimes without a timezone ("2025-01-28T00:00:00") although R4 forbids it.
Neither is rejected: a partial date stands for the whole interval it names,
and a naive time is read as UTC, each with a warning that names the path.
"""

from __future__ import annotations

import re
from calendar import monthrange
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache

from mypy_extensions import mypyc_attr

from mappings.errors import FhirDateError

_DATE_TIME = re.compile(
    r"^(?P<year>\d{4})(?:-(?P<month>\d{2})(?:-(?P<day>\d{2})"
    r"(?:T(?P<hour>\d{2}):(?P<minute>\d{2})(?::(?P<second>\d{2})(?:\.(?P<fraction>\d+))?)?"
    r"(?P<tz>Z|[+-]\d{2}:\d{2})?)?)?)?$"
)
ISO_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


@mypyc_attr(native_class=False)
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


def parse_interval(value: str, path: str) -> Interval:
    """Read a FHIR date/dateTime/instant as the interval it stands for.

    `path` (e.g. "Encounter.period.start") names the element in warnings and
    errors; the value itself is never repeated in them.
    """
    fast = _full_date_time(value)
    if fast is not None:
        return fast
    match = _DATE_TIME.match(value)
    if match is None:
        raise FhirDateError(f"{path}: not a FHIR date or dateTime")
    try:
        return _interval(match.groupdict(), path)
    except OverflowError as exc:
        # Valid FHIR whose UTC offset moves it out of the calendar: 0001-01-01T00:00+01:00.
        raise FhirDateError(f"{path}: at the edge of the calendar (year 1 or 9999)") from exc


def _full_date_time(value: str) -> Interval | None:
    """The common shape, "2025-01-28T10:00:00Z" or "...+01:00", read by the C parser
    (several times faster than the pattern); None for every other shape, and for
    anything the C parser refuses, so that `_interval` gives the one answer or error."""
    common = _common_instant(value)
    if common is None:
        return None
    moment, _ = common
    try:
        return Interval(moment, moment + _SECOND)
    except OverflowError:
        return None


def _common_shape(value: str) -> bool:
    size = len(value)
    if size == 20:
        if value[19] != "Z":
            return False
    elif size != 25 or value[19] not in "+-" or value[22] != ":":
        return False
    return value[4] + value[7] + value[10] + value[13] + value[16] == "--T::"


# Cached: one visit's resources share its times (an Encounter's start is the onset of
# the Conditions recorded at it and the time of its Observations and screens).
@lru_cache(maxsize=1 << 16)
def _common_instant(value: str) -> tuple[datetime, str] | None:
    """The UTC moment and its ISO text of a value in the common shape, read by the C
    parser (a UTC value is its own text once the parser has checked it); None for
    every other shape and for what the parser refuses."""
    if not _common_shape(value):
        return None
    try:
        moment = datetime.fromisoformat(value)
        # "Z", "+00:00" and "-00:00" all come back with the UTC singleton: no
        # `replace` (a keyword call dearer than the parse itself), no formatting.
        if moment.tzinfo is UTC:
            return moment, value[:19] + "Z"
        moment = moment.astimezone(UTC)
        return moment, utc_iso(moment)
    except (ValueError, OverflowError):
        return None


def instant_iso(value: str) -> str | None:
    """`parse_interval(value).start_iso` for the common shape; None otherwise."""
    common = _common_instant(value)
    return common[1] if common else None


def _next_second_iso(moment: datetime, iso: str) -> str:
    """The ISO text of `moment` + 1 s, given `iso`, the text of `moment`: below second 59
    only the seconds change (formatting a datetime costs more than the whole parse)."""
    following = _NEXT_SECOND.get(iso[17:19])
    if following is not None:
        return f"{iso[:17]}{following}Z"
    return utc_iso(moment + _SECOND)


_NEXT_SECOND = {f"{second:02d}": f"{second + 1:02d}" for second in range(59)}
_SECOND = timedelta(seconds=1)


def instant_bounds(value: str) -> tuple[str, str, datetime] | None:
    """For the common dateTime shape: `parse_interval(value)`'s start_iso, end_iso and
    start, read by the C parser; None for every other shape (read it the long way)."""
    common = _common_instant(value)
    if common is None:
        return None
    moment, start = common
    try:
        return start, _next_second_iso(moment, start), moment
    except OverflowError:
        return None


def _interval(parts: dict[str, str | None], path: str) -> Interval:
    year = int(parts["year"] or 0)
    try:
        if parts["month"] is None:
            start = datetime(year, 1, 1, tzinfo=UTC)
            end = _later(datetime(year, 12, 31, tzinfo=UTC), timedelta(days=1))
            return Interval(start, end, f"{path}: partial date (year only)", True)
        month = int(parts["month"])
        if parts["day"] is None:
            start = datetime(year, month, 1, tzinfo=UTC)
            end = _later(start, timedelta(days=monthrange(year, month)[1]))
            return Interval(start, end, f"{path}: partial date (year and month only)", True)
        day_start = datetime(year, month, int(parts["day"]), tzinfo=UTC)
        if parts["hour"] is None:
            return Interval(day_start, _later(day_start, timedelta(days=1)))
        naive = day_start.replace(
            hour=int(parts["hour"] or 0),
            minute=int(parts["minute"] or 0),
            second=int(parts["second"] or 0),
        )
    except ValueError as exc:
        raise FhirDateError(f"{path}: not a real calendar date") from exc
    tz = parts["tz"]
    if tz is None:
        warning = f"{path}: dateTime without timezone, read as UTC"
        return Interval(naive, _later(naive, timedelta(seconds=1)), warning)
    offset = timedelta(0)
    if tz != "Z":
        sign = 1 if tz[0] == "+" else -1
        offset = sign * timedelta(hours=int(tz[1:3]), minutes=int(tz[4:6]))
    moment = naive - offset
    return Interval(moment, _later(moment, timedelta(seconds=1)))


_END_OF_CALENDAR = datetime.max.replace(tzinfo=UTC)


def _later(moment: datetime, delta: timedelta) -> datetime:
    """`moment + delta`, held at the calendar's last instant: 9999-12-31 is valid FHIR
    (often meaning "no end") and its interval ends where datetime does."""
    try:
        return moment + delta
    except OverflowError:
        return _END_OF_CALENDAR


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
        start_iso = instant_iso(start)
        if start_iso is None:
            interval = _read(start, f"{path}.start", warnings)
            if interval is not None:
                start_iso = interval.start_iso
                if end is None and interval.partial:
                    end_iso = interval.end_iso
    if isinstance(end, str):
        end_iso = instant_iso(end)
        if end_iso is None:
            interval = _read(end, f"{path}.end", warnings)
            if interval is not None:
                # A time is the moment the period ends; a date closes at the end of what
                # it names.
                end_iso = interval.start_iso if "T" in end else interval.end_iso
    return start_iso, end_iso, warnings


def _read(value: str, path: str, warnings: list[str]) -> Interval | None:
    """The interval, or None with the error added to `warnings`."""
    try:
        interval = parse_interval(value, path)
    except FhirDateError as exc:
        warnings.append(str(exc))
        return None
    if interval.warning:
        warnings.append(interval.warning)
    return interval
