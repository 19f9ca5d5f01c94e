"""What the pages show, worked out from the API's own answers: a journey's timeline in
three lanes, and each PROM trajectory as chart geometry (bands, points, reliable
changes). Pure: the routes read, these arrange, the templates draw."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from mappings.rulepack import RulePack, Scale

LANES = (
    ("diagnose", "Tell me what's wrong"),
    ("treat", "Fix what's wrong"),
    ("keep_well", "Keep me well"),
)
FLAG_TEXT = {"self_harm_risk": "Self-harm risk"}


@dataclass(slots=True)
class TimelineRow:
    """One day of a journey: its records in their lanes (and those no job fits)."""

    day: str
    lanes: dict[str, list[dict[str, Any]]]
    other: list[dict[str, Any]] = field(default_factory=list)


def timeline(items: Iterable[dict[str, Any]]) -> list[TimelineRow]:
    """Records (as GET /people/{id}/journey answers them) by day, oldest first; records
    without a time come first, under "undated"."""
    rows: dict[str, TimelineRow] = {}
    for item in items:
        day = (item.get("occurred_start") or "")[:10] or "undated"
        row = rows.get(day)
        if row is None:
            row = rows[day] = TimelineRow(day, {lane: [] for lane, _ in LANES})
        row.lanes.get(item["job"], row.other).append(item)
    return sorted(rows.values(), key=lambda r: (r.day != "undated", r.day))


def safety_records(items: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The records carrying a safety flag, to be shown before anything else."""
    return [item for item in items if item.get("flags") and not item.get("excluded")]


# A chart's drawing area, in SVG user units.
WIDTH, HEIGHT, LEFT, TOP, PLOT_W, PLOT_H = 360.0, 150.0, 36.0, 10.0, 310.0, 110.0


@dataclass(frozen=True, slots=True)
class ChartBand:
    label: str
    y: float
    height: float
    shade: int  # 0 (best) to 4 (worst), a CSS class


@dataclass(frozen=True, slots=True)
class ChartPoint:
    x: float
    y: float
    at: str
    value: float
    reliable: str | None  # "improvement" or "deterioration" since the baseline
    band: str | None


@dataclass(frozen=True, slots=True)
class PromChart:
    title: str
    summary: str
    bands: tuple[ChartBand, ...]
    points: tuple[ChartPoint, ...]
    path: str
    ticks: tuple[tuple[float, str], ...]
    width: float = WIDTH
    height: float = HEIGHT


def _scale(pack: RulePack, instrument: str, scale: str) -> Scale | None:
    for candidate in pack.instruments:
        if candidate.id == instrument:
            return next((s for s in candidate.scales if s.id == scale), None)
    return None


def prom_chart(
    outcome: dict[str, Any], records: dict[str, dict[str, Any]], pack: RulePack
) -> PromChart | None:
    """One PROM trajectory of an episode (an item of its `outcomes`) as a chart: its
    values over time within the scale's range, the scale's bands behind them, and
    each value that differs from the baseline by at least the reliable-change
    threshold marked. None when fewer than one value can be placed."""
    scale = _scale(pack, outcome["instrument"], outcome["scale"])
    values = _values(outcome, records)
    if scale is None or not values:
        return None
    low, high = scale.low, scale.high
    span = (high - low) or 1.0

    def y_of(value: float) -> float:
        return TOP + PLOT_H * (1 - (value - low) / span)

    times = [_day_number(at) for at, _ in values]
    first, last = min(times), max(times)
    width = (last - first) or 1

    def x_of(day: int) -> float:
        return LEFT + (PLOT_W * (day - first) / width if last > first else PLOT_W / 2)

    baseline = values[0][1]
    threshold = outcome.get("reliable_change_threshold")
    points = []
    for (at, value), day in zip(values, times, strict=True):
        reliable = None
        if threshold is not None and abs(value - baseline) >= threshold:
            better = (value < baseline) == (scale.better == "lower")
            reliable = "improvement" if better else "deterioration"
        points.append(
            ChartPoint(x_of(day), y_of(value), at[:10], value, reliable, scale.band(value))
        )
    bands = _bands(scale, y_of)
    path = " ".join(f"{'M' if i == 0 else 'L'}{p.x:.1f},{p.y:.1f}" for i, p in enumerate(points))
    ticks = ((y_of(low), f"{low:g}"), (y_of(high), f"{high:g}"))
    return PromChart(
        outcome.get("scale_name") or outcome["instrument"],
        _summary(outcome, values),
        bands,
        tuple(points),
        path,
        ticks,
    )


def _values(outcome: dict[str, Any], records: dict[str, dict[str, Any]]) -> list[tuple[str, float]]:
    found = []
    for record_id in outcome.get("records", []):
        record = records.get(record_id)
        if record is None or not record.get("occurred_start"):
            continue
        score = next(
            (s["value"] for s in record.get("scores") or [] if s.get("scale") == outcome["scale"]),
            record.get("score"),
        )
        if score is not None:
            found.append((record["occurred_start"], float(score)))
    return sorted(found)


def _day_number(at: str) -> int:
    return date.fromisoformat(at[:10]).toordinal()


def _bands(scale: Scale, y_of: Any) -> tuple[ChartBand, ...]:
    drawn = []
    lower = scale.low
    count = len(scale.bands)
    for index, band in enumerate(scale.bands):
        upper = min(band.upto, scale.high)
        top, bottom = y_of(upper), y_of(lower)
        severity = index if scale.better == "lower" else count - 1 - index
        shade = round(4 * severity / (count - 1)) if count > 1 else 0
        drawn.append(ChartBand(band.label, top, bottom - top, shade))
        lower = upper
    return tuple(drawn)


def _summary(outcome: dict[str, Any], values: Sequence[tuple[str, float]]) -> str:
    """The chart in words, for screen readers and for anyone who does not read charts."""
    first, latest = values[0], values[-1]
    text = (
        f"{outcome.get('scale_name') or outcome['instrument']}: {first[1]:g} on {first[0][:10]}, "
        f"{latest[1]:g} on {latest[0][:10]} ({len(values)} measures)"
    )
    if outcome.get("reliable_improvement"):
        text += "; reliable improvement"
    elif outcome.get("reliable_deterioration"):
        text += "; reliable deterioration"
    if outcome.get("recovery"):
        text += "; recovered"
    return text
