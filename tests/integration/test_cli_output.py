"""What the listing commands print for scripts and files: `--json` (one document, stable
keys), `--csv` (a header row, then a row per item), tables not cut when stdout is a file
or a pipe, and clear refusals of options that do not go together.

In-process (Typer's CliRunner: stdout is no terminal there either) on a small store
with a quarantined line, a possible match and a webhook subscription; the piped
behaviour a person sees is in `test_cli_piped.py`, as real processes.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import Result
from sqlalchemy import Engine
from typer.testing import CliRunner

from integration.cli.commands import app
from integration.ingest.pipeline import IngestPipeline
from integration.store.engine import open_store
from mappings.rulepack import RulePack
from tests.conftest import encounter, person, throwaway_store_url, write_ndjson

SSN = "512-34-5678"
ALICE = {"name": [{"family": "Smith", "given": ["Alice"]}], "gender": "female"}


@pytest.fixture
def store(request: pytest.FixtureRequest, tmp_path: Path, pack: RulePack) -> Iterator[str]:
    """A store where `clinic` and `plan` each have an Alice with one SSN but two birth
    dates (a possible match), an encounter, and a quarantined line."""
    with throwaway_store_url("sqlite", request, tmp_path) as url:
        engine = open_store(url)
        try:
            _import(
                engine,
                pack,
                "clinic",
                write_ndjson(
                    tmp_path / "clinic.ndjson",
                    person("a1", ssn=SSN, **ALICE),
                    encounter("e1", "a1", klass="EMER"),
                    "{not json",
                ),
            )
            _import(
                engine,
                pack,
                "plan",
                write_ndjson(
                    tmp_path / "plan.ndjson",
                    person("b1", ssn=SSN, birth_date="1999-09-09", **ALICE),
                ),
            )
        finally:
            engine.dispose()
        yield url


def _import(engine: Engine, pack: RulePack, source: str, path: Path) -> None:
    IngestPipeline(engine, pack, source, 1 << 20).run([path])


def journey(store: str, *args: str) -> Result:
    return CliRunner().invoke(app, list(args), env={"JOURNEY_DATABASE_URL": store})


def json_of(store: str, *args: str) -> Any:
    result = journey(store, *args, "--json")
    assert result.exit_code == 0, result.output
    return orjson.loads(result.stdout)


def csv_of(store: str, *args: str) -> list[dict[str, str]]:
    result = journey(store, *args, "--csv")
    assert result.exit_code == 0, result.output
    return list(csv.DictReader(io.StringIO(result.stdout)))


def alice_of(store: str, source: str) -> str:
    [found] = [p for p in json_of(store, "people") if p["sources"][0]["source"] == source]
    person_id: str = found["id"]
    return person_id


def test_status_as_json_is_one_document_with_the_counts(store: str) -> None:
    status = json_of(store, "status")
    assert status["people"] == 2
    assert status["resources_by_source"] == {"clinic": 2, "plan": 1}
    assert status["quarantine_open"] == 1
    assert status["store"].startswith("sqlite:///")
    assert set(status["mapping_code"]) == {"compiled", "detail"}


def test_people_list_with_ids_names_birth_dates_and_source_patients(store: str) -> None:
    listed = json_of(store, "people")
    assert sorted((p["name"], p["birth_date"]) for p in listed) == [
        ("Alice Smith", "1970-01-01"),
        ("Alice Smith", "1999-09-09"),
    ]
    assert set(listed[0]) == {"id", "name", "birth_date", "sources"}
    rows = csv_of(store, "people")
    assert list(rows[0]) == ["id", "name", "birth_date", "sources"]
    assert sorted(row["sources"] for row in rows) == ["clinic/a1", "plan/b1"]
    table = journey(store, "people").stdout
    for person_id in (p["id"] for p in listed):
        assert person_id in table  # whole, to paste into `journey show`


def test_show_as_json_has_the_person_the_journey_and_the_episodes(store: str) -> None:
    shown = json_of(store, "show", alice_of(store, "clinic"))
    assert set(shown) == {"person", "journey", "episodes"}
    assert shown["person"]["identifiers"][0]["value"] == SSN
    [record] = shown["journey"]
    assert (record["job"], record["source"]["resource_id"]) == ("diagnose", "e1")
    [row] = csv_of(store, "show", alice_of(store, "clinic"))
    assert (row["job"], row["resource_id"], row["excluded"]) == ("diagnose", "e1", "false")


def test_quarantine_lists_as_json_and_csv_and_shows_one_entry_as_json(store: str) -> None:
    [entry] = json_of(store, "quarantine")
    assert (entry["source"], entry["location"], entry["stage"]) == ("clinic", "line 3", "intake")
    assert "content" not in entry
    [row] = csv_of(store, "quarantine")
    assert row["origin"].endswith("clinic.ndjson")
    assert row["error"].startswith("malformed JSON")
    shown = json_of(store, "quarantine", "--show", str(entry["id"]))
    assert shown["content"] == "{not json"


def test_review_and_history_as_json_and_csv(store: str) -> None:
    [pair] = json_of(store, "people", "review")
    assert {pair["a"]["source"], pair["b"]["source"]} == {"clinic", "plan"}
    [row] = csv_of(store, "people", "review")
    assert {row["a_birth_date"], row["b_birth_date"]} == {"1970-01-01", "1999-09-09"}
    assert row["pair"] == "1"
    assert "birth_date differs" in row["fields"]
    [decision] = json_of(store, "people", "history", alice_of(store, "plan"))
    assert decision["outcome"] == "possible"
    [row] = csv_of(store, "people", "history", alice_of(store, "plan"))
    assert (row["outcome"], row["decided_by"]) == ("possible", "automatic")


def test_sources_subscriptions_and_audit_as_json_and_csv(store: str, tmp_path: Path) -> None:
    config = tmp_path / "journey.toml"
    config.write_text(
        '[[sources]]\nname = "hospital"\nkind = "provider"\n'
        'base_url = "http://127.0.0.1:9/fhir"\nmode = "rest"\n'
    )
    [source] = json_of(store, "--config", str(config), "sources")
    assert (source["name"], source["mode"], source["resource_types"]) == ("hospital", "rest", [])
    [row] = csv_of(store, "--config", str(config), "sources")
    assert (row["source"], row["base_url"], row["resource_type"]) == (
        "hospital",
        "http://127.0.0.1:9/fhir",
        "",
    )
    added = journey(store, "subscriptions", "add", "https://care.example/hook")
    assert added.exit_code == 0, added.output
    [subscription] = json_of(store, "subscriptions", "list")
    assert subscription["url"] == "https://care.example/hook"
    [row] = csv_of(store, "subscriptions", "list")
    assert (row["url"], row["state"]) == ("https://care.example/hook", "delivering")
    assert json_of(store, "audit") == []
    assert list(csv.reader(io.StringIO(journey(store, "audit", "--csv").stdout))) == [
        ["id", "recorded", "action", "subtype", "outcome", "client", "address", "person_id",
         "method", "path", "query", "status", "request_id"],
    ]  # fmt: skip


@pytest.mark.parametrize(
    "command",
    [
        ["people"],
        ["people", "review"],
        ["quarantine"],
        ["sources"],
        ["audit"],
        ["subscriptions", "list"],
        ["outcomes"],
        ["show", "anyone"],
    ],
)
def test_json_and_csv_together_are_refused_naming_both(store: str, command: list[str]) -> None:
    result = journey(store, *command, "--json", "--csv")
    assert result.exit_code == 2
    assert "--json and --csv cannot be used together" in _flat(result.stderr)
    assert result.stdout == ""


def test_show_of_one_quarantine_entry_is_not_csv(store: str) -> None:
    result = journey(store, "quarantine", "--show", "1", "--csv")
    assert result.exit_code == 2
    assert "--show prints one entry" in _flat(result.stderr)


def _flat(text: str) -> str:
    """An error as one line: Typer draws it in a box, wrapped at its width."""
    return " ".join(text.replace("│", " ").split())
