"""Shared fixtures: the default rule pack, a fresh SQLite store per test, an importer."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import settings as hypothesis_settings
from sqlalchemy import Engine, select, text
from sqlalchemy.exc import OperationalError

from bench.scratch_postgres import scratch_database
from integration.ingest.pipeline import IngestPipeline, IngestSummary
from integration.store.engine import create_store_engine, open_store
from integration.store.schema import job_records
from mappings.rulepack import RulePack, load_rule_pack

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="session")
def pack() -> RulePack:
    return load_rule_pack()


# A real PostgreSQL (on these machines at 127.0.0.1:5432; scripts/test starts it).
POSTGRES_ADMIN_URL = os.environ.get(
    "JOURNEY_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


# Throw-away databases are named after the test run's process, so a run drops only
# its own and those of runs that are gone, never a concurrent run's.
RUN_PREFIX = f"journey_test_{os.getpid()}_"


def _run_alive(database: str) -> bool:
    pid = database.removeprefix("journey_test_").split("_")[0]
    if not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@pytest.fixture(scope="session")
def postgres_admin() -> Iterator[Engine]:
    admin = create_store_engine(POSTGRES_ADMIN_URL).execution_options(isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text("SELECT 1"))
    except OperationalError as exc:
        pytest.fail(
            f"PostgreSQL is not reachable at {POSTGRES_ADMIN_URL} "
            f"(set JOURNEY_TEST_POSTGRES_URL): {exc}"
        )
    with admin.connect() as conn:  # left behind by a run that was killed
        names = conn.execute(
            text("SELECT datname FROM pg_database WHERE datname LIKE 'journey\\_test\\_%'")
        ).scalars()
        # Only a dead run's: another run on this server (a second checkout) keeps its own.
        for name in [n for n in names if not _run_alive(n)]:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    yield admin
    admin.dispose()


@contextmanager
def throwaway_store_url(
    backend: str, request: pytest.FixtureRequest, directory: Path
) -> Iterator[str]:
    """A fresh store's URL: a SQLite file in `directory` or a throw-away PG database."""
    if backend == "sqlite":
        yield f"sqlite:///{directory / 'journey.db'}"
        return
    admin: Engine = request.getfixturevalue("postgres_admin")
    with scratch_database(admin, f"{RUN_PREFIX}{uuid.uuid4().hex[:16]}") as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh store's URL on each backend (see `throwaway_store_url`)."""
    with throwaway_store_url(request.param, request, tmp_path) as url:
        yield url


@pytest.fixture
def engine(store_url: str) -> Iterator[Engine]:
    """A fresh, migrated store on each backend (see `store_url`)."""
    store = open_store(store_url)
    try:
        yield store
    finally:
        store.dispose()


@pytest.fixture
def postgres_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """A fresh, migrated store on PostgreSQL only, for what only PostgreSQL does."""
    with throwaway_store_url("postgresql", request, tmp_path) as url:
        store = open_store(url)
        try:
            yield store
        finally:
            store.dispose()


def refuse_rows(engine: Engine, table: str, column: str, word: str) -> None:
    """Make the store refuse rows of `table` whose `column` holds `word`, with a real
    database error: a CHECK constraint on PostgreSQL, a trigger on SQLite (which has no
    ALTER TABLE ... ADD CHECK)."""
    with engine.begin() as conn:
        if engine.url.get_backend_name() == "sqlite":
            conn.execute(
                text(
                    f"CREATE TRIGGER poison BEFORE INSERT ON {table} "
                    f"WHEN NEW.{column} LIKE '%{word}%' BEGIN SELECT RAISE(ABORT, 'refused'); END"
                )
            )
        else:
            conn.execute(
                text(
                    f"ALTER TABLE {table} ADD CONSTRAINT poison "
                    f"CHECK ({column} NOT LIKE '%{word}%')"
                )
            )


@contextmanager
def database_away(admin: Engine, database: str) -> Iterator[None]:
    """While inside, this one PostgreSQL database is away: new connections are refused
    and open ones cut, as in an outage, without stopping the server other runs share."""
    with admin.connect() as conn:
        conn.execute(text(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false'))
        conn.execute(
            text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :db"),
            {"db": database},
        )
    try:
        yield
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true'))


ImportFn = Callable[..., IngestSummary]


@pytest.fixture
def import_files(engine: Engine, pack: RulePack) -> ImportFn:
    def run(
        *paths: Path | str, source: str = "test-source", max_bytes: int = 1 << 20
    ) -> IngestSummary:
        return IngestPipeline(engine, pack, source, max_bytes, batch_size=50).run(list(paths))

    return run


def push_put(client: Any, resource: dict[str, Any], headers: dict[str, str]) -> None:
    """PUT a resource to /fhir as a push client, insisting that it was stored."""
    url = f"/fhir/{resource['resourceType']}/{resource['id']}"
    answer = client.put(url, json=resource, headers=headers)
    assert answer.status_code in (200, 201), answer.text


def write_ndjson(path: Path, *resources: dict[str, Any] | str) -> Path:
    """One resource (or a raw text line) per line."""
    lines = [r if isinstance(r, str) else orjson.dumps(r).decode() for r in resources]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def patient(pid: str, **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "id": pid,
        "name": [{"family": "Test", "given": ["Pat"]}],
        **extra,
    }


SSN = "http://hl7.org/fhir/sid/us-ssn"
MBI = "http://hl7.org/fhir/sid/us-mbi"
# One woman's names before and after marriage: only an identifier can join Patients
# carrying them (the demographics alone are a possible match, not a certain one).
MAIDEN = [{"family": "Smith", "given": ["Alice"]}]
MARRIED = [{"family": "Okafor", "given": ["Alice"]}]


def person(
    pid: str,
    ssn: str | None = None,
    mbi: str | None = None,
    birth_date: str = "1970-01-01",
    **extra: Any,
) -> dict[str, Any]:
    """A Patient with the demographics an identifier match needs (a name and a birth
    date) and identifiers of the systems the default pack trusts."""
    identifiers = [{"system": SSN, "value": ssn}] if ssn else []
    identifiers += [{"system": MBI, "value": mbi}] if mbi else []
    return patient(pid, identifier=identifiers, birthDate=birth_date, **extra)


# A reason per class, so an Encounter the plumbing tests build lands on a known job
# (a class alone is no evidence of one): ambulatory and emergency visits for a
# symptom (diagnose), a virtual follow-up (keep_well); inpatient and home-health
# stays are placed by their class.
TYPICAL_REASON = {
    "AMB": ("R51.9", "Headache"),
    "EMER": ("R07.9", "Chest pain"),
    "VR": ("Z09", "Follow-up examination after completed treatment"),
}


def encounter(
    eid: str, patient_id: str, klass: str = "AMB", start: str = "2025-03-01T10:00:00Z", **extra: Any
) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Encounter",
        "id": eid,
        "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": klass},
        "subject": {"reference": f"Patient/{patient_id}"},
        "period": {"start": start},
    }
    if klass in TYPICAL_REASON and "reasonCode" not in extra and "reasonReference" not in extra:
        code, display = TYPICAL_REASON[klass]
        resource["reasonCode"] = [
            {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": code,
                         "display": display}]}
        ]  # fmt: skip
    resource.update(extra)
    return resource


# CI runs the property tests on a fixed set of examples, so a run is repeatable.
hypothesis_settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    hypothesis_settings.load_profile("ci")


# The clinical review set's agreement table (tests/integration/test_review_set.py),
# carried back from the worker that ran it and printed at the end of the run.
REVIEW_SET_REPORT = "review_set_report"
# The episode review set's agreement (tests/mappings/test_episode_review_set.py).
EPISODE_REVIEW_REPORT = "episode_review_report"
REPORT_TITLES = {
    REVIEW_SET_REPORT: "clinical review set",
    EPISODE_REVIEW_REPORT: "episode review set",
}


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for outcome in ("passed", "failed"):
        for report in terminalreporter.stats.get(outcome, []):
            for name, value in getattr(report, "user_properties", ()):
                if name in REPORT_TITLES and report.when == "call":
                    terminalreporter.write_sep("-", REPORT_TITLES[name])
                    terminalreporter.write_line(str(value))


def record_keys(engine: Engine) -> set[tuple[str, str, str, str, str]]:
    """Every job record as two ways of building a journey must agree on it: what it is
    about, its job, its rule and when; free of generated ids."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                job_records.c.resource_type,
                job_records.c.resource_id,
                job_records.c.job,
                job_records.c.rule_id,
                job_records.c.occurred_start,
            )
        ).all()
    return {(r[0], r[1], r[2], r[3], r[4]) for r in rows}
