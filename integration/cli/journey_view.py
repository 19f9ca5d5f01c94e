"""What `journey show` prints: a person's journey as a table (safety flags stand out),
as JSON with the person and their episodes, or as CSV, one row per record."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rich.markup import escape
from rich.table import Table
from sqlalchemy import Engine

from integration.cli.console import console
from integration.cli.output import print_csv, print_json
from integration.clock import utc_now
from integration.journey.episodes import episodes_of_person
from integration.store import queries
from mappings.rulepack import RulePack

JOB_COLOURS = {"diagnose": "cyan", "treat": "magenta", "keep_well": "green", "unclassified": "red"}
RECORD_COLUMNS = (
    "occurred_start", "occurred_end", "job", "title", "setting", "score", "band",
    "fulfilment_score", "flags", "excluded", "reason", "source", "resource_type",
    "resource_id", "rule_id", "pack_version", "joined_sources", "event_of",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class PersonJourney:
    """A person as found (a merged id's survivor) and their records, in time order."""

    person_id: str
    person: dict[str, Any]
    records: list[dict[str, Any]]


def read_journey(
    engine: Engine, person_id: str, limit: int = 200, include_excluded: bool = False
) -> PersonJourney | None:
    """The person's journey; None when there is no such person."""
    with engine.connect() as conn:
        resolved = queries.resolve_person(conn, person_id)
        person = queries.get_person(conn, resolved) if resolved else None
        if person is None or resolved is None:
            return None
        where = queries.JourneyFilter(include_excluded=include_excluded)
        records = queries.journey(conn, resolved, limit, where=where)
    return PersonJourney(resolved, person, records)


def print_journey(found: PersonJourney) -> None:
    person, records = found.person, found.records
    sources = ", ".join(f"{s['source']} Patient/{s['patient_id']}" for s in person["sources"])
    table = Table(
        title=f"Journey of {escape(person['name'] or 'person')} ({found.person_id})\n"
        f"{escape(sources)}"
    )
    table.add_column("when", no_wrap=True)
    table.add_column("job", no_wrap=True)
    table.add_column("what", ratio=1)
    table.add_column("source", no_wrap=True)
    for record in records:
        when = (record["occurred_start"] or "-")[:10]
        job = record["job"]
        table.add_row(
            when,
            f"[{JOB_COLOURS.get(job, 'white')}]{job}[/]",
            _what(record),
            escape(", ".join(_sources_of(record))),
        )
    console.print(table)


def _what(record: dict[str, Any]) -> str:
    what = escape(record["title"])
    if record["score"] is not None:
        band = f", {record['band']}" if record["band"] else ""
        what += f" (score {record['score']}{band})"
    if record["fulfilment_score"] is not None:
        what += f" (fulfilment {record['fulfilment_score']}/5)"
    flags = record["flags"]
    if "self_harm_risk" in flags:
        what = f"[bold white on red] SELF-HARM RISK [/] {what}"
    others = [flag for flag in flags if flag != "self_harm_risk"]
    if others:
        what += f" [yellow]{escape('[' + ', '.join(others) + ']')}[/]"
    if record["excluded"]:
        return f"[dim]excluded: {what} ({escape(record['reason']['text'])})[/]"
    if record["event_of"]:
        return f"[dim]the same event as another source's record: {what}[/]"
    return what


def _sources_of(record: dict[str, Any]) -> list[str]:
    return [record["source"]["source"], *(j["source"] for j in record["joined"])]


def print_journey_json(engine: Engine, found: PersonJourney, pack: RulePack) -> None:
    """The person (as GET /people/{id}), their records (as the journey endpoint's items)
    and their episodes (as GET /people/{id}/episodes), in one document."""
    with engine.connect() as conn:
        episodes = episodes_of_person(conn, found.person_id, pack, utc_now())
    print_json({"person": found.person, "journey": found.records, "episodes": episodes})


def print_journey_csv(found: PersonJourney) -> None:
    print_csv(
        RECORD_COLUMNS,
        (
            {
                **{key: record[key] for key in RECORD_COLUMNS if key in record},
                "flags": ";".join(record["flags"]),
                "reason": record["reason"]["text"],
                "rule_id": record["reason"]["rule_id"],
                "pack_version": record["reason"]["pack_version"],
                "source": record["source"]["source"],
                "resource_type": record["source"]["resource_type"],
                "resource_id": record["source"]["resource_id"],
                "joined_sources": ";".join(_sources_of(record)[1:]),
            }
            for record in found.records
        ),
    )
