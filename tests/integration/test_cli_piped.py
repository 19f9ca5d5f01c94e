"""`journey` with its output going to a file or a pipe, as a real process: tables whole
(not cut to 80 columns), progress as plain lines with no escape codes, and an import
that names only its own records still waiting for their Patient."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from integration.store.engine import open_store
from integration.store.sync_state import record_run
from tests.conftest import encounter, patient, throwaway_store_url, write_ndjson
from tests.servers import JOURNEY

LONG_SOURCE = "hospital-of-the-very-long-name-that-no-terminal-column-would-hold-whole"
LONG_URL = "http://127.0.0.1:9/fhir/with/a/path/long/enough/to/be/cut/at/eighty/columns"


@pytest.fixture
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with throwaway_store_url("sqlite", request, tmp_path) as url:
        yield url


def journey(store: str, folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`journey` with stdout and stderr to pipes, and no COLUMNS to lean on."""
    env = {**os.environ, "JOURNEY_DATABASE_URL": store}
    for name in ("COLUMNS", "FORCE_COLOR", "TTY_COMPATIBLE", "JOURNEY_CONFIG"):
        env.pop(name, None)
    return subprocess.run(
        [JOURNEY, *args], capture_output=True, text=True, cwd=folder, env=env, timeout=120
    )


def test_sources_piped_keeps_every_column_whole(store: str, tmp_path: Path) -> None:
    config = tmp_path / "journey.toml"
    config.write_text(
        f'[[sources]]\nname = "{LONG_SOURCE}"\nkind = "provider"\n'
        f'base_url = "{LONG_URL}"\nmode = "rest"\n'
    )
    engine = open_store(store)
    with engine.begin() as conn:
        error = "ConnectError: no response from the server after 6 attempts, giving up"
        record_run(conn, LONG_SOURCE, "Patient", "2025-01-01T00:00:00Z", "2025-01-01T00:00:09Z",
                   error, {"fetched": 12, "new": 10, "quarantined": 2})  # fmt: skip
    engine.dispose()
    listed = journey(store, tmp_path, "--config", str(config), "sources")
    assert listed.returncode == 0, listed.stderr
    row = next(line for line in listed.stdout.splitlines() if LONG_SOURCE in line)
    for whole in (LONG_URL, "Patient", "2025-01-01T00:00:09Z", error):
        assert whole in row
    assert "…" not in listed.stdout


def test_quarantine_piped_names_the_whole_file(store: str, tmp_path: Path) -> None:
    folder = tmp_path / "exports" / "from-the-provider-with-a-long-name" / "2025-01-01"
    folder.mkdir(parents=True)
    path = write_ndjson(folder / "patients-of-the-first-quarter.ndjson", "{not json")
    assert journey(store, tmp_path, "import", str(path)).returncode == 3
    listed = journey(store, tmp_path, "quarantine")
    assert f"{path}, line 1" in listed.stdout
    assert "…" not in listed.stdout


def test_import_piped_prints_progress_as_plain_lines(store: str, tmp_path: Path) -> None:
    path = write_ndjson(tmp_path / "a.ndjson", patient("p1"), encounter("e1", "p1", klass="EMER"))
    imported = journey(store, tmp_path, "import", str(path), "--source", "clinic")
    assert imported.returncode == 0, imported.stderr
    lines = imported.stdout.splitlines()
    assert any(line.startswith("clinic: reading: ") and "(100%)" in line for line in lines)
    assert "clinic: mapping: 2/2 (100%)" in imported.stdout
    assert "\x1b" not in imported.stdout + imported.stderr
    progress = [line for line in lines if line.startswith("clinic: ")]
    assert not any("━" in line for line in progress)  # no frozen frame of a bar either
    remapped = journey(store, tmp_path, "remap")
    assert "remapping: 2/2 (100%)" in remapped.stdout
    assert "\x1b" not in remapped.stdout


def test_an_import_names_only_its_own_records_in_no_journey(store: str, tmp_path: Path) -> None:
    first = write_ndjson(tmp_path / "first.ndjson", encounter("e-first", "not-yet", klass="EMER"))
    second = write_ndjson(tmp_path / "second.ndjson", encounter("e-second", "later", klass="EMER"))
    assert "Encounter/e-first" in journey(store, tmp_path, "import", str(first)).stdout
    later = journey(store, tmp_path, "import", str(second)).stdout
    assert "1 of this import's records are in no journey yet" in later
    assert "Encounter/e-second points to Patient/later" in later
    assert "e-first" not in later
