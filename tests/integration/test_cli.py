"""The `journey` command as a user runs it: a real process, real files, a real store."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

import mappings
from mappings.rulepack import DEFAULT_PACK, load_rule_pack
from tests.conftest import RUN_PREFIX, encounter, patient, throwaway_store_url, write_ndjson

JOURNEY = str(Path(sys.executable).parent / "journey")


# Commands run on SQLite; those where the store matters (import, status, show, remap,
# migrations) are parametrized onto PostgreSQL too, with BOTH_STORES.
BOTH_STORES = pytest.mark.parametrize("store_url", ["sqlite", "postgresql"], indirect=True)


@pytest.fixture(params=["sqlite"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with throwaway_store_url(request.param, request, tmp_path) as url:
        yield url


@pytest.fixture(autouse=True)
def _commands_use_the_test_store(store_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOURNEY_CLI_TEST_STORE", store_url)


def journey(tmp_path: Path, *args: str, **settings: str) -> subprocess.CompletedProcess[str]:
    """Run `journey` on the test's store; `settings` are environment variables on top."""
    env = {
        **os.environ,
        "COLUMNS": "200",
        "JOURNEY_DATABASE_URL": os.environ["JOURNEY_CLI_TEST_STORE"],
    }
    env.pop("JOURNEY_API_KEYS", None)
    env.update(settings)
    return subprocess.run(
        [JOURNEY, *args], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120
    )


@BOTH_STORES
def test_import_reports_per_type_and_exits_3_when_something_was_quarantined(tmp_path: Path) -> None:
    path = write_ndjson(
        tmp_path / "mixed.ndjson",
        patient("p1"),
        encounter("e1", "p1", klass="EMER"),
        patient("p2", birthDate="1970-13-01"),
        "{not json",
    )
    result = journey(tmp_path, "import", str(path), "--source", "clinic")
    assert result.returncode == 3, result.stderr
    out = result.stdout
    assert "Import into source 'clinic'" in out
    assert "2 quarantined" in out
    assert f"{path}, line 3: Patient/p2 rejected at Patient.birthDate" in out
    assert f"{path}, line 4: rejected: malformed JSON" in out
    assert "job records diagnose 1" in out
    assert "1970-13-01" not in out + result.stderr

    listed = journey(tmp_path, "quarantine")
    assert listed.returncode == 0
    assert "Patient.birthDate" in listed.stdout
    assert "line 4" in listed.stdout
    shown = journey(tmp_path, "quarantine", "--show", "1")
    assert '"birthDate":"1970-13-01"' in shown.stdout  # the operator sees the stored content

    again = journey(tmp_path, "import", str(path), "--source", "clinic")
    assert again.returncode == 3
    assert "Nothing new to map" in again.stdout


@BOTH_STORES
def test_status_show_and_remap(tmp_path: Path) -> None:
    path = write_ndjson(tmp_path / "a.ndjson", patient("p1"), encounter("e1", "p1", klass="HH"))
    assert journey(tmp_path, "import", str(path)).returncode == 0
    status = journey(tmp_path, "status")
    assert "people: 1" in status.stdout
    # Which mapping code ran: the compiled build or the sources, and why.
    assert f"Mapping code: {mappings.NATIVE_BUILD.describe()}" in status.stdout
    remap = journey(tmp_path, "remap")
    assert remap.returncode == 0
    assert f"Remapped 2 resources with pack {load_rule_pack().label}" in remap.stdout
    assert "keep_well 1" in remap.stdout


@BOTH_STORES
def test_remap_with_a_pack_makes_it_the_pack_every_later_command_uses(tmp_path: Path) -> None:
    pack_file = tmp_path / "home-health-is-diagnose.toml"
    text = DEFAULT_PACK.read_text().replace(
        f'version = "{load_rule_pack().version}"', 'version = "9.0.0"'
    )
    pack_file.write_text(
        text.replace(
            'id = "encounter.class.home-health"\njob = "keep_well"',
            'id = "encounter.class.home-health"\njob = "diagnose"',
        )
    )
    first = write_ndjson(tmp_path / "a.ndjson", patient("p1"), encounter("e1", "p1", klass="HH"))
    assert journey(tmp_path, "import", str(first)).returncode == 0
    remap = journey(tmp_path, "remap", "--pack", str(pack_file))
    assert remap.returncode == 0, remap.stderr
    assert "The store's rule pack is now default 9.0.0" in remap.stdout
    assert "diagnose 1" in remap.stdout
    # A later import, with no pack named anywhere, maps with the store's pack.
    later = write_ndjson(tmp_path / "b.ndjson", encounter("e2", "p1", klass="HH"))
    imported = journey(tmp_path, "import", str(later))
    assert "job records diagnose 1" in imported.stdout, imported.stdout

    back = journey(tmp_path, "remap", "--pack", "bundled")
    assert back.returncode == 0
    assert f"now {load_rule_pack().label}" in back.stdout
    assert "keep_well 2" in back.stdout


def test_a_broken_pack_is_refused_before_anything_changes(tmp_path: Path) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text(DEFAULT_PACK.read_text().replace('job = "treat"', 'job = "cure"', 1))
    result = journey(tmp_path, "remap", "--pack", str(broken))
    assert result.returncode != 0
    assert "broken.toml" in result.stderr
    assert "encounter_rules.0.job" in result.stderr


def test_the_old_per_process_pack_setting_is_refused_with_advice(tmp_path: Path) -> None:
    result = journey(tmp_path, "status", JOURNEY_RULE_PACK=str(DEFAULT_PACK))
    assert result.returncode != 0
    assert "journey remap --pack" in result.stderr


def test_missing_path_is_one_clear_line_not_a_traceback(tmp_path: Path) -> None:
    result = journey(tmp_path, "import", str(tmp_path / "nowhere.ndjson"))
    assert result.returncode == 1
    assert "no such file or folder" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_connector_error_is_one_line_naming_the_path_as_written(tmp_path: Path) -> None:
    # Brackets in a path are not Rich markup: "[/]" alone used to end in a MarkupError.
    missing = tmp_path / "[red]drop[/] folder" / ("long-name-" * 12 + ".ndjson")
    result = journey(tmp_path, "import", str(missing))
    assert result.returncode == 1
    assert result.stderr.splitlines() == [f"error: {missing}: no such file or folder"]


def test_bad_setting_is_one_clear_line(tmp_path: Path) -> None:
    (tmp_path / "journey.toml").write_text("port = 'eighty'\n")
    result = journey(tmp_path, "status")
    assert result.returncode == 1
    assert "setting 'port'" in result.stderr
    assert "Traceback" not in result.stderr


@BOTH_STORES
def test_db_upgrade_twice_is_harmless(tmp_path: Path) -> None:
    assert journey(tmp_path, "db", "upgrade").returncode == 0
    second = journey(tmp_path, "db", "upgrade")
    assert second.returncode == 0
    assert "up to date" in second.stdout


def test_show_prints_a_journey(tmp_path: Path) -> None:
    path = write_ndjson(tmp_path / "a.ndjson", patient("p1"), encounter("e1", "p1", klass="EMER"))
    journey(tmp_path, "import", str(path))
    from integration.journey.identity import person_id_for

    result = journey(tmp_path, "show", person_id_for("files", "p1"))
    assert result.returncode == 0, result.stderr
    assert "Journey of Pat Test" in result.stdout
    assert "diagnose" in result.stdout
    assert journey(tmp_path, "show", "nobody").returncode == 1


def test_other_types_are_kept_not_quarantined(tmp_path: Path) -> None:
    observation = {
        "resourceType": "Observation",
        "id": "o1",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "44261-6"}]},
        "subject": {"reference": "Patient/p1"},
        "valueQuantity": {"value": 12},
    }
    practitioner = {"resourceType": "Practitioner", "id": "dr1"}
    path = tmp_path / "a.ndjson"
    path.write_bytes(
        b"\n".join(orjson.dumps(r) for r in (patient("p1"), observation, practitioner)) + b"\n"
    )
    result = journey(tmp_path, "import", str(path))
    assert result.returncode == 0
    assert "Observation" in result.stdout
    assert "Practitioner" in result.stdout


def test_import_output_names_places_never_patient_data(tmp_path: Path) -> None:
    named = patient("p9", name=[{"family": "Quixote", "given": ["Zelda"]}], birthDate="1970-13-01")
    naive = encounter(
        "e9", "p9", start="2025-01-28T00:00:00", reasonCode=[{"text": "Zelda's secret"}]
    )
    path = write_ndjson(tmp_path / "phi.ndjson", named, naive)
    env_result = journey(tmp_path, "--config", str(_debug_config(tmp_path)), "import", str(path))
    output = env_result.stdout + env_result.stderr
    assert "Patient.birthDate" in output
    for value in ("Zelda", "Quixote", "1970-13-01"):
        assert value not in output


def _debug_config(tmp_path: Path) -> Path:
    config = tmp_path / "debug.toml"
    config.write_text('log_level = "DEBUG"\n')
    return config


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_processes_starting_together_migrate_one_at_a_time(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """An API, a sync and workers often start at once on a fresh store."""
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'fresh.db'}"
        drop = None
    else:
        from sqlalchemy import text

        admin = request.getfixturevalue("postgres_admin")
        name = f"{RUN_PREFIX}{tmp_path.name[-12:].lower().replace('-', '_')}_mig"
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        url = admin.url.set(database=name).render_as_string(hide_password=False)

        def drop() -> None:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

    journey = str(Path(sys.executable).parent / "journey")
    env = {**os.environ, "JOURNEY_DATABASE_URL": url}
    try:
        processes = [
            subprocess.Popen(
                [journey, "db", "upgrade"],
                env=env,
                cwd=tmp_path,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            for _ in range(4)
        ]
        outcomes = [process.communicate(timeout=120) for process in processes]
        for process, (_out, err) in zip(processes, outcomes, strict=True):
            assert process.returncode == 0, err.decode()[-2000:]
    finally:
        if drop is not None:
            drop()


def test_with_migrate_on_start_off_an_outdated_store_is_refused_until_upgraded(
    tmp_path: Path,
) -> None:
    """Where migrations are a deploy step, commands check the schema instead of changing it."""

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return journey(
            tmp_path,
            *args,
            JOURNEY_DATABASE_URL=f"sqlite:///{tmp_path / 'deployed.db'}",
            JOURNEY_MIGRATE_ON_START="false",
            COLUMNS="300",
        )

    refused = run("status")
    assert refused.returncode == 1
    assert "schema revision none" in refused.stderr
    assert "run `journey db upgrade`" in refused.stderr
    for _ in range(2):  # a migration run twice changes nothing the second time
        upgraded = run("db", "upgrade")
        assert upgraded.returncode == 0, upgraded.stderr
        assert "is up to date" in upgraded.stdout
    assert run("status").returncode == 0


def test_serve_on_an_outdated_store_is_the_same_one_clear_line(tmp_path: Path) -> None:
    """`journey serve` opened the store inside uvicorn's startup, which printed a traceback."""

    def run(*args: str) -> subprocess.CompletedProcess[str]:  # the test's store is fresh
        return journey(
            tmp_path,
            *args,
            JOURNEY_MIGRATE_ON_START="false",
            JOURNEY_API_KEYS="a-key",
            COLUMNS="300",
        )

    status = run("status")
    served = run("serve", "--port", "0")
    assert served.returncode == 1
    assert "Traceback" not in served.stdout + served.stderr
    assert served.stderr.splitlines() == status.stderr.splitlines()
    assert "schema revision none" in served.stderr
    assert len(served.stderr.splitlines()) == 1


def test_a_source_name_outside_the_config_rule_is_one_clear_line(tmp_path: Path) -> None:
    path = write_ndjson(tmp_path / "a.ndjson", patient("p1"))
    result = journey(tmp_path, "import", str(path), "--source", "bad name!")
    assert result.returncode == 1
    assert "--source" in result.stderr
    assert "letters, digits" in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "people: 0" in journey(tmp_path, "status").stdout


def test_a_resource_without_a_type_is_not_shown_as_none(tmp_path: Path) -> None:
    path = write_ndjson(tmp_path / "a.ndjson", patient("p1"), {"id": "x1"})
    result = journey(tmp_path, "import", str(path))
    assert result.returncode == 3
    assert "None" not in result.stdout
    assert "(no resourceType)/x1 rejected at resourceType" in result.stdout
    listed = journey(tmp_path, "quarantine")
    assert "None" not in listed.stdout
    assert "(no resourceType)/x1" in listed.stdout


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # gone while we looked
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _running(pid: int) -> bool:
    """Alive and not a zombie (an orphan's zombie waits for whoever reaps it)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_validation_workers_exit_when_the_import_is_killed(tmp_path: Path) -> None:
    data = tmp_path / "many.ndjson"
    data.write_bytes(b"\n".join(orjson.dumps(patient(f"p{n}")) for n in range(60_000)) + b"\n")
    env = {
        **os.environ,
        "JOURNEY_DATABASE_URL": os.environ["JOURNEY_CLI_TEST_STORE"],
        "JOURNEY_VALIDATION_PROCESSES": "2",
        "JOURNEY_IMPORT_BATCH_SIZE": "200",
    }
    importing = subprocess.Popen(
        [JOURNEY, "import", str(data)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    children: list[int] = []
    try:
        deadline = time.monotonic() + 60
        while len(children) < 2 and importing.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
            children = _children(importing.pid)
        assert len(children) >= 2, "the import did not start its validation workers"
        time.sleep(0.5)  # workers busy with batches, not just started
        children = _children(importing.pid)
        importing.kill()
        importing.wait(timeout=10)
        # Workers notice on their next look at the parent; a loaded machine takes longer.
        deadline = time.monotonic() + 30
        while any(_running(pid) for pid in children) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not [pid for pid in children if _running(pid)]
    finally:
        importing.kill()
        importing.wait(timeout=10)
        for pid in children:  # left by a failure: the import's own workers, by pid
            if _running(pid):
                os.kill(pid, signal.SIGKILL)
