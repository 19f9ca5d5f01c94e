"""What a journey update mapped, in the words `journey import`, `journey sync` and
`journey remap` print it."""

from __future__ import annotations

from integration.cli.console import console
from integration.journey.update import JourneyUpdate


def records_by_job(update: JourneyUpdate) -> str:
    """`diagnose 3, treat 5`, or `none`."""
    return ", ".join(f"{job} {n}" for job, n in sorted(update.records_by_job.items())) or "none"


def mapped_line(update: JourneyUpdate) -> str:
    if not update.resources:
        return "Nothing new to map."
    return (
        f"Mapped {update.resources} resources: job records {records_by_job(update)}; "
        f"{update.people_linked} patients linked to people."
    )


def print_mapping_failures(count: int) -> None:
    if count:
        console.print(
            f"[yellow]{count} resources could not be mapped[/]: isolated, everything else "
            "mapped (`journey quarantine --stage mapping` lists them)"
        )
