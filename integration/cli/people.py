"""`journey people ...`: finding people (by name, identifier, birth date), the review
queue of possible matches, reviewers' decisions, and each person's link history."""

from __future__ import annotations

import getpass
import re
from collections.abc import Callable
from datetime import date
from typing import Annotated, Any, TypeVar

import typer
from rich.markup import escape
from rich.table import Table

from integration.cli.console import console, stderr
from integration.cli.output import AsCsv, AsJson, OutputFormat, output_format, print_csv, print_json
from integration.clock import utc_now
from integration.config import Settings
from integration.journey import review
from integration.journey.matching import Outcome
from integration.store import matches as matches_store
from integration.store.engine import open_configured_store
from integration.store.people_search import PeopleSearch, name_words, search_people

people_app = typer.Typer(help="People across sources: find them, and who may be one person.")

PERSON_COLUMNS = ("id", "name", "birth_date", "sources")
REVIEW_COLUMNS = (
    "pair", "a_source", "a_patient_id", "a_person_id", "a_name", "a_birth_date",
    "b_source", "b_patient_id", "b_person_id", "b_name", "b_birth_date",
    "rule", "reason", "score", "fields", "decided_at",
)  # fmt: skip
HISTORY_COLUMNS = (
    "decided_at", "a_source", "a_patient_id", "b_source", "b_patient_id",
    "outcome", "rule", "decided_by", "reason",
)  # fmt: skip
_BIRTH_DATE = re.compile(r"\d{4}(-\d{2}){0,2}")
_T = TypeVar("_T")


def _settings(ctx: typer.Context) -> Settings:
    # The root command's context holds the settings (see integration.cli.commands).
    settings: Settings = ctx.find_root().obj
    return settings


def identifier_option(text: str | None) -> tuple[str | None, str] | None:
    """`--identifier` as (system, value): SYSTEM|VALUE, or VALUE under any system."""
    if text is None:
        return None
    if "|" not in text:
        return _identifier(None, text)
    system, _, value = text.partition("|")
    if not system:
        # Identifiers without a system link nothing and are not kept to search.
        raise typer.BadParameter(
            "the system before '|' is empty: write SYSTEM|VALUE or VALUE",
            param_hint="'--identifier'",
        )
    return _identifier(system, value)


def _identifier(system: str | None, value: str) -> tuple[str | None, str]:
    if not value.strip():
        raise typer.BadParameter(
            "the value is empty: write SYSTEM|VALUE or VALUE", param_hint="'--identifier'"
        )
    return system, value


def birth_date_option(text: str | None) -> str | None:
    """`--birth-date` as YYYY-MM-DD, YYYY-MM or YYYY (the precisions of a FHIR date)."""
    if text is None:
        return None
    bad = typer.BadParameter(
        f"{text!r} is not a date: write YYYY-MM-DD, YYYY-MM or YYYY", param_hint="'--birth-date'"
    )
    if not _BIRTH_DATE.fullmatch(text):
        raise bad
    try:
        date.fromisoformat((text + "-01-01")[:10])
    except ValueError:
        raise bad from None
    return text


def name_option(text: str | None) -> str | None:
    if text is not None and not name_words(text):
        raise typer.BadParameter(
            "give a name with at least one letter or digit", param_hint="'--name'"
        )
    return text


@people_app.callback(invoke_without_command=True)
def people(
    ctx: typer.Context,
    name: Annotated[
        str | None,
        typer.Option(
            help="Words within a family or given name ('ann smi'), any case or accent",
        ),
    ] = None,
    identifier: Annotated[
        str | None,
        typer.Option(help="SYSTEM|VALUE, or VALUE under any system", show_default=False),
    ] = None,
    birth_date: Annotated[
        str | None,
        typer.Option(help="YYYY-MM-DD (or YYYY-MM, YYYY)"),
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="People to list")] = 50,
    after: Annotated[
        str | None, typer.Option(help="List from after this person id (the next page)")
    ] = None,
    as_json: AsJson = False,
    as_csv: AsCsv = False,
) -> None:
    """List people, or find them by name, identifier or birth date (all given must
    hold): ids for `journey show`, names, birth dates and source Patients."""
    if ctx.invoked_subcommand is not None:
        return
    chosen = output_format(as_json, as_csv)
    search = PeopleSearch(
        name_option(name), identifier_option(identifier), birth_date_option(birth_date)
    )
    engine = open_configured_store(_settings(ctx))
    with engine.connect() as conn:
        found = search_people(conn, search, limit + 1, after)
    more, found = len(found) > limit, found[:limit]
    if chosen is OutputFormat.JSON:
        print_json(found)
    elif chosen is OutputFormat.CSV:
        print_csv(PERSON_COLUMNS, ({**p, "sources": _patients(p, ";")} for p in found))
    elif not found:
        console.print("No people match." if _searching(search) else "No people yet.")
    else:
        table = Table(title="People" if not _searching(search) else "People found")
        for column in ("id", "name", "birth date", "source Patients"):
            table.add_column(column)
        for person in found:
            table.add_row(
                person["id"],
                escape(person["name"] or ""),
                person["birth_date"] or "",
                escape(_patients(person, ", ")),
            )
        console.print(table)
        if more:
            console.print(f"More: --after {found[-1]['id']}", highlight=False)


def _searching(search: PeopleSearch) -> bool:
    return search != PeopleSearch()


def _patients(person: dict[str, Any], separator: str) -> str:
    return separator.join(f"{p['source']}/{p['patient_id']}" for p in person["sources"])


@people_app.command("review")
def people_review(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option(help="How many pairs to show")] = 50,
    as_json: AsJson = False,
    as_csv: AsCsv = False,
) -> None:
    """Possible matches waiting for a reviewer: both Patients side by side, with why
    they were not linked automatically and how each field compared."""
    chosen = output_format(as_json, as_csv)
    engine = open_configured_store(_settings(ctx))
    with engine.connect() as conn:
        waiting = matches_store.review_queue(conn, limit)
    if chosen is OutputFormat.JSON:
        print_json(waiting)
        return
    if chosen is OutputFormat.CSV:
        print_csv(REVIEW_COLUMNS, (_review_row(n, pair) for n, pair in enumerate(waiting, 1)))
        return
    if not waiting:
        console.print("No possible matches wait for review.")
        return
    table = Table(title=f"{len(waiting)} possible matches (oldest first)")
    for column in ("", "source", "patient", "person", "name", "birth date"):
        table.add_column(column)
    table.add_column("why", overflow="fold")
    for number, pair in enumerate(waiting, 1):
        for label, side in (("a", pair["a"]), ("b", pair["b"])):
            table.add_row(
                f"{number}{label}",
                side["source"],
                side["patient_id"],
                (side["person_id"] or "")[:8],
                escape(side["name"] or ""),
                side["birth_date"] or "",
                escape(f"{pair['reason']} ({_compared(pair)})") if label == "a" else "",
                end_section=label == "b",
            )
    console.print(table)


def _compared(pair: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in pair["fields"].items())


def _review_row(number: int, pair: dict[str, Any]) -> dict[str, Any]:
    sides = {f"{label}_{key}": value for label in ("a", "b") for key, value in pair[label].items()}
    return {**pair, **sides, "pair": number, "fields": _compared(pair)}


PatientArg = Annotated[str, typer.Argument(help="A source Patient as SOURCE/PATIENT_ID")]
Reason = Annotated[str, typer.Option(help="Why: kept in the history", min=1)]


def _patient_key(text: str) -> tuple[str, str]:
    source, sep, patient_id = text.rpartition("/")
    if not sep or not source or not patient_id:
        raise typer.BadParameter(f"{text!r} is not SOURCE/PATIENT_ID")
    return source, patient_id


def _reviewer_decision(ctx: typer.Context, run: Callable[..., _T]) -> _T:
    """Run a reviewer's decision under the derive lock with the store's identity rules;
    an unknown Patient or person, or a merged person, is one clear line and exit 1."""
    engine = open_configured_store(_settings(ctx))
    user = f"cli:{getpass.getuser()}"
    try:
        return review.under_derive_lock(
            engine, lambda conn, rules: run(conn, rules, user, utc_now())
        )
    except (review.UnknownPatient, review.UnknownPerson, review.PersonMerged, ValueError) as exc:
        stderr.print(f"error: {exc}", highlight=False)
        raise typer.Exit(1) from None


@people_app.command("link")
def people_link(ctx: typer.Context, a: PatientArg, b: PatientArg, reason: Reason) -> None:
    """Two source Patients are one person (a reviewer's decision, kept on re-matching)."""
    first, second = _patient_key(a), _patient_key(b)
    linked = _reviewer_decision(
        ctx,
        lambda conn, rules, user, now: review.decide_pair(
            conn, first, second, Outcome.MATCH, reason, user, now, rules
        ),
    )
    console.print(f"Linked: both are person {linked[first]}", highlight=False)


@people_app.command("keep-apart")
def people_keep_apart(ctx: typer.Context, a: PatientArg, b: PatientArg, reason: Reason) -> None:
    """Two source Patients are two people: never linked automatically again."""
    first, second = _patient_key(a), _patient_key(b)
    linked = _reviewer_decision(
        ctx,
        lambda conn, rules, user, now: review.decide_pair(
            conn, first, second, Outcome.NO_MATCH, reason, user, now, rules
        ),
    )
    console.print(f"Kept apart: {a} is person {linked[first]}, {b} is person {linked[second]}")


@people_app.command("merge")
def people_merge(
    ctx: typer.Context,
    person_id: Annotated[str, typer.Argument(help="The person to merge")],
    into: Annotated[str, typer.Argument(help="The person to merge it into")],
    reason: Reason,
) -> None:
    """Two people are one."""
    survivor = _reviewer_decision(
        ctx,
        lambda conn, rules, user, now: review.merge_people(
            conn, person_id, into, reason, user, now, rules
        ),
    )
    console.print(f"Merged: person {survivor}", highlight=False)


@people_app.command("split")
def people_split(ctx: typer.Context, patient: PatientArg, reason: Reason) -> None:
    """Take a source Patient out of its person."""
    key = _patient_key(patient)
    person = _reviewer_decision(
        ctx,
        lambda conn, rules, user, now: review.split_patient(conn, key, reason, user, now, rules),
    )
    console.print(f"Split: {patient} is person {person}", highlight=False)


@people_app.command("history")
def people_history(
    ctx: typer.Context,
    person_id: Annotated[str, typer.Argument(help="A person id")],
    as_json: AsJson = False,
    as_csv: AsCsv = False,
) -> None:
    """Every decision on a pair with one of this person's Patients, oldest first."""
    chosen = output_format(as_json, as_csv)
    engine = open_configured_store(_settings(ctx))
    try:
        with engine.connect() as conn:
            resolved, items = review.history_of_person(conn, person_id)
    except review.UnknownPerson as exc:
        stderr.print(f"error: {exc}", highlight=False)
        raise typer.Exit(1) from None
    if chosen is OutputFormat.JSON:
        print_json(items)
        return
    if chosen is OutputFormat.CSV:
        print_csv(
            HISTORY_COLUMNS,
            (
                {
                    **item,
                    **{f"{side}_{key}": item[side][key] for side in "ab" for key in item[side]},
                }
                for item in items
            ),
        )
        return
    table = Table(title=f"Link history of person {resolved}")
    for column in ("when", "a", "b", "outcome", "by", "why"):
        table.add_column(column, overflow="fold")
    for item in items:
        table.add_row(
            item["decided_at"],
            escape(f"{item['a']['source']}/{item['a']['patient_id']}"),
            escape(f"{item['b']['source']}/{item['b']['patient_id']}"),
            item["outcome"],
            escape(item["decided_by"]),
            escape(item["reason"]),
        )
    console.print(table)
