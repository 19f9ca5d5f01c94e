from __future__ import annotations

import pytest

from mappings.dates import parse_interval, period_interval
from mappings.errors import FhirDateError


@pytest.mark.parametrize(
    ("value", "start", "end", "warned"),
    [
        ("2025", "2025-01-01T00:00:00Z", "2026-01-01T00:00:00Z", True),
        ("2025-12", "2025-12-01T00:00:00Z", "2026-01-01T00:00:00Z", True),
        ("2025-02-28", "2025-02-28T00:00:00Z", "2025-03-01T00:00:00Z", False),
        ("2025-01-28T00:00:00", "2025-01-28T00:00:00Z", "2025-01-28T00:00:01Z", True),
        ("2025-01-28T23:30:00.123+02:00", "2025-01-28T21:30:00Z", "2025-01-28T21:30:01Z", False),
    ],
)
def test_fhir_dates_read_as_intervals(value: str, start: str, end: str, warned: bool) -> None:
    interval = parse_interval(value, "X.when")
    assert (interval.start_iso, interval.end_iso) == (start, end)
    assert (interval.warning is not None) == warned


@pytest.mark.parametrize("value", ["2025-13", "2025-02-30", "yesterday", "2025/01/01"])
def test_non_dates_raise_naming_the_path_not_the_value(value: str) -> None:
    with pytest.raises(FhirDateError) as caught:
        parse_interval(value, "Encounter.period.start")
    assert str(caught.value).startswith("Encounter.period.start:")
    assert value not in str(caught.value)


def test_period_with_an_unreadable_end_stays_open_with_a_warning() -> None:
    start, end, warnings = period_interval("2025-01-01T00:00:00Z", "soon", "Encounter.period")
    assert (start, end) == ("2025-01-01T00:00:00Z", None)
    assert warnings == ["Encounter.period.end: not a FHIR date or dateTime"]


@pytest.mark.parametrize(
    ("value", "start", "end"),
    [
        # 9999-12-31 is valid FHIR, often written for "no end": the interval ends where
        # the calendar does instead of overflowing (an OverflowError stopped all mapping).
        ("9999", "9999-01-01T00:00:00Z", "9999-12-31T23:59:59Z"),
        ("9999-12", "9999-12-01T00:00:00Z", "9999-12-31T23:59:59Z"),
        ("9999-12-31", "9999-12-31T00:00:00Z", "9999-12-31T23:59:59Z"),
        ("9999-12-31T23:59:59Z", "9999-12-31T23:59:59Z", "9999-12-31T23:59:59Z"),
        ("0001-01-01", "0001-01-01T00:00:00Z", "0001-01-02T00:00:00Z"),
    ],
)
def test_dates_at_the_ends_of_the_calendar_are_read(value: str, start: str, end: str) -> None:
    interval = parse_interval(value, "X.when")
    assert (interval.start_iso, interval.end_iso) == (start, end)


@pytest.mark.parametrize("value", ["0001-01-01T00:30:00+01:00", "9999-12-31T23:00:00-05:00"])
def test_an_offset_that_leaves_the_calendar_is_an_error_not_a_crash(value: str) -> None:
    with pytest.raises(FhirDateError, match=r"^Encounter\.period\.end: at the edge"):
        parse_interval(value, "Encounter.period.end")


def test_a_period_ending_in_9999_is_open_to_the_end_of_the_calendar() -> None:
    assert period_interval("2025-01-01", "9999-12-31", "Encounter.period") == (
        "2025-01-01T00:00:00Z",
        "9999-12-31T23:59:59Z",
        [],
    )
