"""A database error never carries patient data into a log or a terminal: SQLAlchemy quotes
the statement's parameters, and PostgreSQL's DETAIL quotes the failing row."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import Engine

from tests.conftest import patient, refuse_rows, write_ndjson

JOURNEY = str(Path(sys.executable).parent / "journey")
SENT_VALUES = ("Zebulon", "Quixote", "1961-07-04", "998-76-5432")


def test_a_failed_import_says_where_the_store_failed_but_no_value_it_was_sent(
    engine: Engine, tmp_path: Path
) -> None:
    # A real database error on the import's own write (not one resource's mapping,
    # which is isolated).
    refuse_rows(engine, "raw_resources", "content", "Zebulon")
    person = patient(
        "p1",
        name=[{"family": "Quixote", "given": ["Zebulon"]}],
        birthDate="1961-07-04",
        identifier=[{"system": "http://hl7.org/fhir/sid/us-ssn", "value": "998-76-5432"}],
    )
    path = write_ndjson(tmp_path / "people.ndjson", person, patient("p2"))
    env = {
        **os.environ,
        "JOURNEY_DATABASE_URL": engine.url.render_as_string(hide_password=False),
        "JOURNEY_LOG_LEVEL": "DEBUG",
    }
    done = subprocess.run(
        [JOURNEY, "import", str(path), "--source", "clinic"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    said = " ".join((done.stdout + done.stderr).split())  # the terminal wraps lines
    assert done.returncode == 1, said[-3000:]
    assert "store error:" in said
    if engine.url.get_backend_name() == "postgresql":
        assert "CheckViolation (SQLSTATE 23514, table raw_resources, constraint poison)" in said
    for value in SENT_VALUES:
        assert value not in said, f"{value!r} reached the output"
    assert "Traceback" not in said
