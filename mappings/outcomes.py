"""Cohort measures over episodes: what payers and providers report about jobs done.

Every measure carries its numerator, denominator and definition, so a reader can
check it and a dashboard can re-aggregate it. Input is episodes as `episode_json`
writes them (the store keeps that form), each with its person; pure.
"""

from __future__ import annotations

import calendar
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from mypy_extensions import mypyc_attr

from mappings.episodes import EpisodeFacts, episode_status, moment
from mappings.model import Job


def cohort_facts(episode: dict[str, Any]) -> dict[str, Any]:
    """What the cohort measures read of an episode (as `episode_json` writes it): a
    fraction of its size, so a report over every episode reads and parses little."""
    contacts = [r for r in episode["records"] if r["contact"]]
    treats = [r["start"] for r in contacts if r["job"] == "treat"]
    first_treat = min(treats) if treats else None
    kept_well = [
        r["start"]
        for r in contacts
        if r["job"] == "keep_well" and first_treat is not None and r["start"] >= first_treat
    ]
    return {
        "concern": episode["concern"]["id"],
        "chronic": episode["concern"]["chronic"],
        "start": episode["start"],
        "last_seen": episode["last_seen"],
        "last_stage": episode["last_stage"],
        "window_days": episode["window_days"],
        "job_done": episode["job_done"],
        "sources": episode["sources"],
        "contact_jobs": sorted(episode["contacts"]),
        "service_lines": episode["service_lines"],
        "wait_days": None if episode["wait_days"] is None else episode["wait_days"]["days"],
        "outcomes": [
            [
                o["reliable_improvement"],
                o["reliable_deterioration"],
                o["recovery"],
                o["percent_improvement"],
            ]
            for o in episode["outcomes"]
        ],
        "fulfilment": [
            [r["id"], r["job"], r["fulfilment_score"]]
            for r in episode["records"]
            if r["fulfilment_score"] is not None
        ],
        "first_treat": first_treat,
        "first_keep_well_after_treat": min(kept_well) if kept_well else None,
    }


@mypyc_attr(native_class=False)
@dataclass(frozen=True, slots=True)
class CohortFilter:
    start_from: str | None = None  # episode start on or after (ISO UTC)
    start_to: str | None = None  # episode start before
    source: str | None = None
    concern: str | None = None
    job: Job | None = None

    def admits(self, episode: dict[str, Any]) -> bool:
        start = episode.get("start") or ""
        if self.start_from is not None and start < self.start_from:
            return False
        if self.start_to is not None and start >= self.start_to:
            return False
        if self.source is not None and self.source not in episode["sources"]:
            return False
        if self.concern is not None and episode["concern"] != self.concern:
            return False
        return self.job is None or self.job.value in episode["contact_jobs"]


@mypyc_attr(native_class=False)
@dataclass(frozen=True, slots=True)
class Measure:
    id: str
    title: str
    value: float | None
    numerator: float | None
    denominator: int
    unit: str
    definition: str

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "value": self.value,
            "numerator": self.numerator,
            "denominator": self.denominator,
            "unit": self.unit,
            "definition": self.definition,
        }


def cohort_measures(
    episodes: Iterable[tuple[str, dict[str, Any]]],
    as_of: str,
    retention_months: int,
    where: CohortFilter = CohortFilter(),
) -> dict[str, Any]:
    """Measures over the (person id, episode facts) pairs `where` admits, as of `as_of`
    (facts as `cohort_facts` writes them)."""
    chosen = [(person, e) for person, e in episodes if where.admits(e)]
    by_status: dict[str, int] = {}
    for _, episode in chosen:
        facts = EpisodeFacts(
            episode["last_seen"],
            Job(episode["last_stage"]) if episode["last_stage"] else None,
            episode["chronic"],
            episode["job_done"],
            episode["window_days"],
        )
        status = episode_status(facts, as_of)
        by_status[status.value] = by_status.get(status.value, 0) + 1
    just_episodes = [e for _, e in chosen]
    measures = [
        *_prom_measures(just_episodes),
        *_fulfilment_measures(just_episodes, where.job),
        _retention(chosen, as_of, retention_months),
        _bundle_adoption(just_episodes),
        _median_wait(just_episodes),
    ]
    return {
        "as_of": as_of,
        "episodes": len(chosen),
        "people": len({person for person, _ in chosen}),
        "episodes_by_status": dict(sorted(by_status.items())),
        "measures": [m.as_json() for m in measures],
    }


def _share(
    id_: str, title: str, hits: int, total: int, definition: str, unit: str = "share"
) -> Measure:
    return Measure(id_, title, _ratio(hits, total), hits, total, unit, definition)


def _ratio(numerator: float, denominator: int) -> float | None:
    return round(numerator / denominator, 4) if denominator else None


def _prom_measures(episodes: Sequence[dict[str, Any]]) -> list[Measure]:
    # Each outcome: [reliable improvement, reliable deterioration, recovery, percent].
    def episodes_where(field: int) -> tuple[int, int]:
        measured = [e for e in episodes if any(o[field] is not None for o in e["outcomes"])]
        hits = [e for e in measured if any(o[field] for o in e["outcomes"])]
        return len(hits), len(measured)

    improved, improved_of = episodes_where(0)
    worse, worse_of = episodes_where(1)
    recovered, recovered_of = episodes_where(2)
    percents = [o[3] for e in episodes for o in e["outcomes"] if o[3] is not None]
    total = round(sum(percents), 2)
    by_20 = sum(1 for p in percents if p >= 20)
    return [
        _share(
            "reliable_improvement",
            "Episodes with reliable PROM improvement",
            improved,
            improved_of,
            "Episodes where some instrument scale improved from baseline to latest by at "
            "least its reliable-change threshold (PHQ-9 6, GAD-7 4, Oxford Knee Score 5, "
            "PROMIS 5 T-score points), over episodes with a baseline, a later score and "
            "a threshold. Baseline: the last score at or before the first treat, else the "
            "first.",
        ),
        _share(
            "reliable_deterioration",
            "Episodes with reliable PROM deterioration",
            worse,
            worse_of,
            "Episodes where some instrument scale worsened by at least its reliable-change "
            "threshold, over episodes with a baseline, a later score and a threshold.",
        ),
        _share(
            "recovery",
            "Episodes recovered (below caseness)",
            recovered,
            recovered_of,
            "Episodes where a scale at caseness at baseline (PHQ-9 >= 10, GAD-7 >= 8) is "
            "below caseness at the latest score, over episodes with such a baseline and "
            "a later score.",
        ),
        Measure(
            "mean_percent_prom_improvement",
            "Mean percent PROM improvement",
            round(total / len(percents), 2) if percents else None,
            total,
            len(percents),
            "percent",
            "Mean over episode trajectories (instrument scale, baseline and latest, "
            "baseline not 0) of the change in the better direction as a percent of the "
            "baseline (positive is better, whatever the instrument's direction). "
            "Numerator: the sum of percents.",
        ),
        _share(
            "prom_improved_20_percent",
            "Trajectories improved by 20% or more",
            by_20,
            len(percents),
            "Trajectories whose percent improvement is at least 20, over trajectories "
            "with a baseline (not 0) and a later score.",
        ),
    ]


def _fulfilment_measures(episodes: Sequence[dict[str, Any]], job: Job | None) -> list[Measure]:
    # A survey in two episodes (a visit for two concerns) counts once.
    answers: dict[str, tuple[str, int]] = {}
    for episode in episodes:
        for record_id, rated, score in episode["fulfilment"]:
            answers[record_id] = (rated, score)
    jobs = [job] if job is not None else [Job.DIAGNOSE, Job.TREAT, Job.KEEP_WELL]
    measures = []
    for rated in [None, *jobs]:
        scores = [s for j, s in answers.values() if rated is None or j == rated.value]
        if rated is None and job is not None:
            continue
        suffix = "" if rated is None else f".{rated.value}"
        measures.append(
            Measure(
                f"mean_fulfilment{suffix}",
                "Mean job fulfilment" + ("" if rated is None else f" ({rated.value})"),
                round(sum(scores) / len(scores), 2) if scores else None,
                sum(scores),
                len(scores),
                "score 1-5",
                "Mean of job-fulfilment answers (1-5)"
                + ("" if rated is None else f" rating a {rated.value} contact")
                + " in the episodes, each answer once. Numerator: the sum of answers.",
            )
        )
    return measures


def _retention(chosen: Sequence[tuple[str, dict[str, Any]]], as_of: str, months: int) -> Measure:
    cutoff = _add_months(moment(as_of), -months)
    eligible: set[str] = set()
    retained: set[str] = set()
    for person, episode in chosen:
        first_treat = episode["first_treat"]
        if first_treat is None or moment(first_treat) > cutoff:
            continue  # never treated, or not yet had the whole window to come back
        eligible.add(person)
        back = episode["first_keep_well_after_treat"]
        if back is not None and moment(back) <= _add_months(moment(first_treat), months):
            retained.add(person)
    return _share(
        "retention",
        f"Treated people who came back to keep well within {months} months",
        len(retained),
        len(eligible),
        f"People with a treat contact in an episode whose first treat was at least "
        f"{months} months before the as-of date, who had a keep-well contact in the same "
        f"episode within {months} months after that first treat.",
    )


def _bundle_adoption(episodes: Sequence[dict[str, Any]]) -> Measure:
    def bundled(episode: dict[str, Any]) -> bool:
        jobs = [job for job in episode["contact_jobs"] if job != "unclassified"]
        return len(jobs) >= 2 or len(episode["service_lines"]) >= 2

    hits = sum(1 for e in episodes if bundled(e))
    return _share(
        "bundle_adoption",
        "Episodes using two or more jobs or service lines",
        hits,
        len(episodes),
        "Episodes with contacts for two or more jobs (diagnose, treat, keep well) or in "
        "two or more care settings (ambulatory, inpatient, emergency, virtual, pharmacy, "
        "...; questionnaires not counted), over all episodes.",
    )


def _median_wait(episodes: Sequence[dict[str, Any]]) -> Measure:
    waits = [e["wait_days"] for e in episodes if e["wait_days"] is not None]
    return Measure(
        "median_wait_days",
        "Median wait from first diagnose to first treat",
        statistics.median(waits) if waits else None,
        None,
        len(waits),
        "days",
        "Median over episodes with a diagnose contact followed by a treat contact of the "
        "whole days between the first diagnose and the first treat after it. A median has "
        "no numerator; the denominator is the number of episodes measured.",
    )


def _add_months(when: datetime, months: int) -> datetime:
    index = when.month - 1 + months
    year, month = when.year + index // 12, index % 12 + 1
    day = min(when.day, calendar.monthrange(year, month)[1])
    return when.replace(year=year, month=month, day=day)
