from __future__ import annotations

import pytest

from mappings.dates import FhirDateError, parse_interval, period_interval


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
