"""What the journey page arranges, without a browser: the lanes of a timeline and
the geometry of a PROM chart (bands behind, reliable changes marked)."""

from __future__ import annotations

from typing import Any

import pytest

from integration.ui.views import HEIGHT, LEFT, PLOT_W, TOP, prom_chart, safety_records, timeline
from mappings.rulepack import RulePack


def record(record_id: str, job: str, at: str | None, **extra: Any) -> dict[str, Any]:
    return {"id": record_id, "job": job, "occurred_start": at, "flags": [], **extra}


def test_a_timeline_puts_each_day_in_three_lanes_and_the_rest_aside() -> None:
    rows = timeline(
        [
            record("r2", "treat", "2025-02-01T10:00:00Z"),
            record("r1", "diagnose", "2025-01-01T09:00:00Z"),
            record("r3", "keep_well", "2025-02-01T11:00:00Z"),
            record("r4", "unclassified", "2025-02-01T12:00:00Z"),
            record("r0", "diagnose", None),
        ]
    )
    assert [row.day for row in rows] == ["undated", "2025-01-01", "2025-02-01"]
    last = rows[-1]
    assert [i["id"] for i in last.lanes["treat"]] == ["r2"]
    assert [i["id"] for i in last.lanes["keep_well"]] == ["r3"]
    assert last.lanes["diagnose"] == []
    assert [i["id"] for i in last.other] == ["r4"]


def test_safety_flags_are_picked_out_but_not_from_records_out_of_the_journey() -> None:
    flagged = record("r1", "keep_well", "2025-01-01", flags=["self_harm_risk"], excluded=False)
    withdrawn = record("r2", "keep_well", "2025-01-02", flags=["self_harm_risk"], excluded=True)
    assert safety_records([flagged, withdrawn, record("r3", "treat", None)]) == [flagged]


def phq9(record_id: str, at: str, total: float) -> dict[str, Any]:
    return record(record_id, "keep_well", at, scores=[{"scale": "total", "value": total}])


def test_a_phq9_trajectory_is_drawn_within_its_range_with_bands_and_reliable_changes(
    pack: RulePack,
) -> None:
    """PHQ-9 runs 0-27, lower is better, reliable change 6 (the pack's): 16 -> 12 is
    not reliable (4), 16 -> 9 and 16 -> 3 are reliable improvements."""
    records = {
        r["id"]: r
        for r in (
            phq9("a", "2024-06-23T10:00:00Z", 16),
            phq9("b", "2024-07-23T10:00:00Z", 12),
            phq9("c", "2024-08-22T10:00:00Z", 9),
            phq9("d", "2025-01-19T10:00:00Z", 3),
        )
    }
    outcome = {
        "instrument": "phq9",
        "scale": "total",
        "scale_name": "PHQ-9 total",
        "records": ["d", "b", "a", "c", "missing"],
        "reliable_change_threshold": 6.0,
        "reliable_improvement": True,
        "recovery": True,
    }
    chart = prom_chart(outcome, records, pack)
    assert chart is not None
    assert [(p.at, p.value, p.reliable) for p in chart.points] == [
        ("2024-06-23", 16, None),
        ("2024-07-23", 12, None),
        ("2024-08-22", 9, "improvement"),
        ("2025-01-19", 3, "improvement"),
    ]
    first, last = chart.points[0], chart.points[-1]
    assert (first.x, last.x) == (LEFT, LEFT + PLOT_W)
    assert first.y == pytest.approx(TOP + 110 * (1 - 16 / 27))
    assert all(TOP <= p.y <= HEIGHT for p in chart.points)
    # Five PHQ-9 bands, minimal (palest) at the bottom to severe at the top.
    assert [b.label for b in chart.bands] == [
        "minimal",
        "mild",
        "moderate",
        "moderately severe",
        "severe",
    ]
    assert [b.shade for b in chart.bands] == [0, 1, 2, 3, 4]
    assert chart.bands[0].y > chart.bands[-1].y
    assert chart.summary == (
        "PHQ-9 total: 16 on 2024-06-23, 3 on 2025-01-19 (4 measures); reliable improvement;"
        " recovered"
    )


def test_a_trajectory_with_no_placeable_value_draws_no_chart(pack: RulePack) -> None:
    outcome = {"instrument": "phq9", "scale": "total", "records": ["gone"]}
    assert prom_chart(outcome, {}, pack) is None
    unknown = {"instrument": "nope", "scale": "total", "records": []}
    assert prom_chart(unknown, {}, pack) is None
