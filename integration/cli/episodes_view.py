"""Episodes and cohort outcome measures in the terminal."""

from __future__ import annotations

from typing import Any

from rich.markup import escape
from rich.table import Table
from sqlalchemy import Engine

from integration.cli.console import console
from integration.clock import utc_now
from integration.journey.episodes import episodes_of_person
from mappings.rulepack import RulePack

STATUS_COLOURS = {
    "being_diagnosed": "cyan",
    "in_treatment": "magenta",
    "keeping_well": "green",
    "resolved": "dim",
    "lost_to_follow_up": "yellow",
}


def print_episodes(engine: Engine, person_id: str, pack: RulePack) -> None:
    """A person's episodes: concern, status, stages with dates, wait, PROM change."""
    with engine.connect() as conn:
        episodes = episodes_of_person(conn, person_id, pack, utc_now())
    table = Table(title="Episodes (records grouped by concern)")
    table.add_column("concern", ratio=1)
    table.add_column("status", no_wrap=True)
    table.add_column("stages", ratio=2)
    table.add_column("outcomes", ratio=2)
    for episode in episodes:
        status = episode["status"]
        table.add_row(
            escape(episode["concern"]["title"]),
            f"[{STATUS_COLOURS.get(status, 'white')}]{status.replace('_', ' ')}[/]",
            escape(_stages_text(episode)),
            escape(_outcomes_text(episode)),
        )
    console.print(table)


def _stages_text(episode: dict[str, Any]) -> str:
    stages = " -> ".join(
        f"{s['job']} {s['start'][:10]}" + (f"..{s['end'][:10]}" if s["end"] != s["start"] else "")
        for s in episode["stages"]
    )
    wait = episode["wait_days"]
    if wait is not None:
        stages += f"; waited {wait['days']} days to treat"
    return stages or "-"


def _outcomes_text(episode: dict[str, Any]) -> str:
    parts = []
    for outcome in episode["outcomes"]:
        text = f"{outcome['scale_name']} {outcome['baseline']['value']:g}"
        if outcome["latest"] is not None:
            text += f" -> {outcome['latest']['value']:g}"
            verdicts = [
                name
                for name, key in (
                    ("reliable improvement", "reliable_improvement"),
                    ("reliable deterioration", "reliable_deterioration"),
                    ("recovered", "recovery"),
                )
                if outcome[key]
            ]
            if verdicts:
                text += f" ({', '.join(verdicts)})"
        parts.append(text)
    fulfilment = episode["fulfilment"]
    if fulfilment["count"]:
        parts.append(f"fulfilment {fulfilment['mean']:g}/5 ({fulfilment['count']})")
    return "; ".join(parts) or "-"


def print_outcomes(report: dict[str, Any]) -> None:
    filters = ", ".join(f"{k} {v}" for k, v in report["filters"].items())
    title = (
        f"Outcomes as of {report['as_of'][:10]}: {report['episodes']} episodes of "
        f"{report['people']} people ({filters})"
    )
    table = Table(title=title)
    table.add_column("measure", ratio=2)
    table.add_column("value", justify="right", no_wrap=True)
    table.add_column("numerator", justify="right", no_wrap=True)
    table.add_column("denominator", justify="right", no_wrap=True)
    for measure in report["measures"]:
        value = measure["value"]
        shown = (
            "-"
            if value is None
            else (f"{value:.1%}" if measure["unit"] == "share" else f"{value:g} {measure['unit']}")
        )
        numerator = measure["numerator"]
        table.add_row(
            escape(measure["title"]),
            shown,
            "-" if numerator is None else f"{numerator:g}",
            str(measure["denominator"]),
        )
    console.print(table)
    statuses = ", ".join(
        f"{k.replace('_', ' ')} {v}" for k, v in report["episodes_by_status"].items()
    )
    console.print(f"Episodes by status: {statuses or 'none'}", highlight=False)
    if report["people_pending"]:
        console.print(
            f"{report['people_pending']} people's episodes are being recomputed and are not "
            "in these figures yet.",
            highlight=False,
        )
    console.print("Definitions: `journey outcomes --json` (each measure's `definition`).")
