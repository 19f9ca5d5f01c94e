"""Checkpoint arithmetic: pure, no store and no server."""

from __future__ import annotations

from typing import Any

import pytest

from connectors.rest.search import SearchPage
from integration.store.sync_state import later_checkpoint
from integration.sync.checkpoints import checkpoint_of, highest_last_updated, since


def updated(value: str) -> dict[str, Any]:
    return {"resourceType": "Patient", "id": "p", "meta": {"lastUpdated": value}}


@pytest.mark.parametrize(
    ("checkpoint", "overlap", "expected"),
    [
        # A server reads gt<second> as after that whole second: keep the precision.
        ("2025-06-01T12:00:05Z", 0, "2025-06-01T12:00:05Z"),
        ("2025-06-01T12:00:05.250Z", 0, "2025-06-01T12:00:05.250Z"),
        ("2025-06-01T12:00:05.250Z", 60, "2025-06-01T11:59:05.250Z"),
        ("2025-06-01T00:00:30Z", 60, "2025-05-31T23:59:30Z"),
    ],
)
def test_since_subtracts_the_overlap_at_the_checkpoints_precision(
    checkpoint: str, overlap: int, expected: str
) -> None:
    assert since(checkpoint, overlap) == expected


def test_a_checkpoint_is_utc_to_the_millisecond_when_the_server_gives_fractions() -> None:
    assert checkpoint_of(updated("2025-06-01T14:00:05.1234+02:00")) == "2025-06-01T12:00:05.123Z"
    assert checkpoint_of(updated("2025-06-01T12:00:05Z")) == "2025-06-01T12:00:05Z"
    assert checkpoint_of({"resourceType": "Patient", "id": "p"}) is None


@pytest.mark.parametrize(
    ("a", "b", "later"),
    [
        (None, "2025-06-01T12:00:05Z", "2025-06-01T12:00:05Z"),
        ("2025-06-01T12:00:05Z", None, "2025-06-01T12:00:05Z"),
        # As strings "...05Z" sorts after "...05.100Z"; as instants it is earlier.
        ("2025-06-01T12:00:05Z", "2025-06-01T12:00:05.100Z", "2025-06-01T12:00:05.100Z"),
        ("2025-06-01T12:00:05.100Z", "2025-06-01T12:00:05Z", "2025-06-01T12:00:05.100Z"),
        # The same instant in another offset is not later: the one kept stays.
        ("2025-06-01T12:00:05Z", "2025-06-01T14:00:05+02:00", "2025-06-01T12:00:05Z"),
        # Bulk transactionTimes with an offset compare as instants too.
        ("2025-06-01T12:00:05Z", "2025-06-01T13:00:06+01:00", "2025-06-01T13:00:06+01:00"),
        # An unreadable one never wins.
        ("2025-06-01T12:00:05Z", "soon", "2025-06-01T12:00:05Z"),
        ("soon", "2025-06-01T12:00:05Z", "2025-06-01T12:00:05Z"),
    ],
)
def test_the_later_of_two_checkpoints(a: str | None, b: str | None, later: str) -> None:
    assert later_checkpoint(a, b) == later


def test_a_page_moves_the_checkpoint_to_its_newest_resource_and_never_back() -> None:
    page = SearchPage(
        url="https://ehr.example/fhir/Patient",
        number=1,
        total=None,
        resources=[(0, updated("2025-06-01T12:00:01Z")), (1, updated("2025-06-01T12:00:09Z"))],
    )
    assert highest_last_updated(page, None) == "2025-06-01T12:00:09Z"
    assert highest_last_updated(page, "2025-06-01T12:00:03Z") == "2025-06-01T12:00:09Z"
    assert highest_last_updated(page, "2025-07-01T00:00:00Z") == "2025-07-01T00:00:00Z"
