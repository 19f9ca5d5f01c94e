"""Finding people (`journey people`, `integration.store.people_search`): by name in any
case or accent, by an identifier with or without its system, by a birth date whole or
by month or year; each through any of the person's source Patients. The searches run
on both backends; bad input is refused naming the option."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import orjson
import pytest
from click.testing import Result
from sqlalchemy import Engine
from typer.testing import CliRunner

from integration.cli.commands import app
from integration.store.people_search import PeopleSearch, search_people
from tests.conftest import MAIDEN, MARRIED, ImportFn, patient, person, write_ndjson
from tests.servers import JOURNEY

MRN = "urn:oid:2.16.840.1.113883.19.5"


@pytest.fixture
def people(tmp_path: Path, import_files: ImportFn) -> None:
    """María José Núñez (as Maria Nunez at the plan), Jan van der Berg (by record
    number), and Alice Smith who married and is Alice Okafor at the plan."""
    clinic = write_ndjson(
        tmp_path / "clinic.ndjson",
        person("c-maria", ssn="512-34-0001", birth_date="1970-03-14",
               name=[{"family": "Núñez", "given": ["María José"]}]),
        patient("c-jan", birthDate="1985-11-02",
                name=[{"family": "van der Berg", "given": ["Jan"]}],
                identifier=[{"system": MRN, "value": "MRN-7"}]),
        person("c-alice", ssn="512-34-0002", birth_date="1962-07-30", name=MAIDEN),
    )  # fmt: skip
    plan = write_ndjson(
        tmp_path / "plan.ndjson",
        person("p-maria", ssn="512-34-0001", birth_date="1970-03-14",
               name=[{"family": "Nunez", "given": ["Maria"]}]),
        person("p-alice", ssn="512-34-0002", birth_date="1962-07-30", name=MARRIED),
    )  # fmt: skip
    import_files(clinic, source="clinic")
    import_files(plan, source="plan")


def found(
    engine: Engine, limit: int = 10, after: str | None = None, **criteria: object
) -> list[str]:
    """The people a search finds, each as its source Patients."""
    with engine.connect() as conn:
        items = search_people(conn, PeopleSearch(**criteria), limit, after)  # type: ignore[arg-type]
    return [" ".join(f"{p['source']}/{p['patient_id']}" for p in i["sources"]) for i in items]


MARIA = "clinic/c-maria plan/p-maria"
JAN = "clinic/c-jan"
ALICE = "clinic/c-alice plan/p-alice"


@pytest.mark.usefixtures("people")
def test_a_name_is_found_in_any_case_or_accent_through_any_source_patient(engine: Engine) -> None:
    assert found(engine, name="nunez") == [MARIA]
    assert found(engine, name="MARÍA NÚ") == [MARIA]
    assert found(engine, name="berg") == [JAN]
    assert found(engine, name="Van der Berg") == [JAN]
    assert found(engine, name="okafor") == [ALICE]  # her married name, at the plan
    assert found(engine, name="alice smith") == [ALICE]
    assert found(engine, name="alice nunez") == []  # every word, on one Patient


@pytest.mark.usefixtures("people")
def test_an_identifier_is_found_with_its_system_or_by_its_value_alone(engine: Engine) -> None:
    assert found(engine, identifier=(MRN, "MRN-7")) == [JAN]
    assert found(engine, identifier=(None, "MRN-7")) == [JAN]
    assert found(engine, identifier=("urn:other", "MRN-7")) == []
    assert found(engine, identifier=(None, "512-34-0001")) == [MARIA]  # one person, two Patients


@pytest.mark.usefixtures("people")
def test_a_birth_date_is_found_whole_or_by_month_or_year(engine: Engine) -> None:
    assert found(engine, birth_date="1970-03-14") == [MARIA]
    assert found(engine, birth_date="1970-03") == [MARIA]
    assert found(engine, birth_date="1985") == [JAN]
    assert found(engine, birth_date="1971") == []


@pytest.mark.usefixtures("people")
def test_criteria_together_must_all_hold_and_pages_follow_on(engine: Engine) -> None:
    assert found(engine, name="alice", birth_date="1962") == [ALICE]
    assert found(engine, name="alice", birth_date="1970") == []
    everyone = found(engine)
    assert sorted(everyone) == sorted([MARIA, JAN, ALICE])
    with engine.connect() as conn:
        [first] = search_people(conn, PeopleSearch(), 1)
    assert found(engine, after=first["id"]) == everyone[1:]


@pytest.mark.usefixtures("people")
def test_journey_people_prints_what_journey_show_needs(engine: Engine, tmp_path: Path) -> None:
    env = {**os.environ, "JOURNEY_DATABASE_URL": engine.url.render_as_string(hide_password=False)}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [JOURNEY, *args], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120
        )

    listed = run("people", "--name", "nunez", "--json")
    assert listed.returncode == 0, listed.stderr
    [maria] = orjson.loads(listed.stdout)
    assert (maria["name"], maria["birth_date"]) == ("María José Núñez", "1970-03-14")
    assert run("show", maria["id"]).returncode == 0
    table = run("people", "--identifier", "MRN-7").stdout
    assert "Jan van der Berg" in table
    assert "1985-11-02" in table
    assert "clinic/c-jan" in table
    assert "More: --after " in run("people", "--limit", "1").stdout


def journey(url: str, *args: str) -> Result:
    return CliRunner().invoke(app, list(args), env={"JOURNEY_DATABASE_URL": url})


@pytest.mark.parametrize(
    ("option", "value", "said"),
    [
        ("--identifier", f"{MRN}|", "the value is empty"),
        ("--identifier", "|MRN-7", "the system before '|' is empty"),
        ("--identifier", " ", "the value is empty"),
        ("--birth-date", "1970-13", "is not a date"),
        ("--birth-date", "1970-02-30", "is not a date"),
        ("--birth-date", "14/03/1970", "is not a date"),
        ("--name", "!!!", "at least one letter or digit"),
    ],
)
def test_bad_search_input_is_refused_naming_the_option(
    tmp_path: Path, option: str, value: str, said: str
) -> None:
    result = journey(f"sqlite:///{tmp_path / 'never-opened.db'}", "people", option, value)
    assert result.exit_code == 2
    message = " ".join(result.stderr.replace("│", " ").split())
    assert f"Invalid value for '{option}'" in message
    assert said in message
