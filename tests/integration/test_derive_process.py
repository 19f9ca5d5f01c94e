"""On PostgreSQL a long pull derives the journey in a process of its own
(journey/derive_process.py): the same journey as deriving in the pull's own process,
from a real FHIR server, and nothing lost when that process dies."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, select

from integration.clock import utc_now
from integration.config import Settings
from integration.ingest.pipeline import IngestPipeline
from integration.journey.derive_process import DeriveProcess, can_derive_apart
from integration.journey.update import flag_all, pending_count
from integration.sources import SourceConfig
from integration.store.derivation import mark_derived, pending_resources
from integration.store.engine import open_store
from integration.store.locks import DERIVE, hold
from integration.store.schema import person_links
from integration.sync.runners import sync_source
from mappings.rulepack import RulePack
from tests.conftest import patient, record_keys, throwaway_store_url, write_ndjson
from tests.servers import Sekmet, seeded_sekmet

# Enough for several rounds of 10 in pages of 5.
PATIENTS = 30


@pytest.fixture(scope="module")
def sekmet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sekmet]:
    yield from seeded_sekmet(tmp_path_factory.mktemp("sekmet"), PATIENTS)


async def pull(engine: Engine, pack: RulePack, sekmet: Sekmet, apart: bool) -> Any:
    config = SourceConfig.model_validate(
        {
            "name": "ehr",
            "kind": "provider",
            "base_url": sekmet.base_url,
            "mode": "rest",
            "page_size": 5,
            "resource_types": ["Patient", "Encounter"],
        }
    )
    settings = Settings(batch_size=10, derive_process=apart)
    summary = await sync_source(engine, pack, settings, config)
    assert not summary.failed, summary.types
    return summary


def journey_of(engine: Engine) -> tuple[set[frozenset[str]], set[tuple[str, str, str, str, str]]]:
    """The people (as sets of their Patients) and every record, free of generated ids."""
    with engine.connect() as conn:
        members: dict[str, set[str]] = {}
        for patient_id, person_id in conn.execute(
            select(person_links.c.patient_id, person_links.c.person_id)
        ):
            members.setdefault(person_id, set()).add(patient_id)
    return {frozenset(people) for people in members.values()}, record_keys(engine)


@pytest.fixture
def rounds(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the rounds asked of a derive process."""
    asked: list[int] = []
    request = DeriveProcess.request

    def counted(self: DeriveProcess) -> None:
        asked.append(1)
        request(self)

    monkeypatch.setattr(DeriveProcess, "request", counted)
    return asked


@pytest.mark.slow
async def test_a_long_pull_derives_apart_to_the_same_journey_as_in_process(
    sekmet: Sekmet,
    postgres_engine: Engine,
    pack: RulePack,
    rounds: list[int],
    request: pytest.FixtureRequest,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    apart = await pull(postgres_engine, pack, sekmet, apart=True)
    assert rounds, "no round went to a derive process"
    with throwaway_store_url("postgresql", request, tmp_path / "in-process") as url:
        here = open_store(url)
        try:
            in_process = await pull(here, pack, sekmet, apart=False)
            expected = journey_of(here)
        finally:
            here.dispose()
    assert "derive process ended unexpectedly" not in caplog.text  # no in-process fallback
    assert journey_of(postgres_engine) == expected
    assert len(expected[0]) == PATIENTS
    assert expected[1]  # the Encounters became records
    assert apart.derive.resources == in_process.derive.resources
    assert apart.derive.records_by_job == in_process.derive.records_by_job
    assert pending_count(postgres_engine) == 0


@pytest.mark.slow
async def test_a_derive_process_killed_mid_pull_loses_nothing(
    sekmet: Sekmet,
    postgres_engine: Engine,
    pack: RulePack,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """As the kernel's OOM killer would: the pull goes on, and what the process had not
    derived is derived in the pull's own process at the end."""
    request = DeriveProcess.request
    killed: list[int] = []

    def request_then_kill(self: DeriveProcess) -> None:
        request(self)
        if not killed and self._executor is not None:
            for pid in list(self._executor._processes):
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)

    monkeypatch.setattr(DeriveProcess, "request", request_then_kill)
    summary = await pull(postgres_engine, pack, sekmet, apart=True)
    assert killed
    assert "the derive process ended unexpectedly" in caplog.text
    assert pending_count(postgres_engine) == 0
    people, records = journey_of(postgres_engine)
    assert len(people) == PATIENTS
    assert records
    assert summary.derive.resources > 0  # the rounds after the death, in this process


def test_only_postgresql_derives_apart(tmp_path: Path) -> None:
    """SQLite has one writer: a derive batch would hold it while the pull waits."""
    assert not can_derive_apart(create_engine(f"sqlite:///{tmp_path / 'journey.db'}"))
    assert not can_derive_apart(create_engine("sqlite://"))
    assert can_derive_apart(create_engine("postgresql+psycopg://u@127.0.0.1:5432/journey"))


def test_a_version_stored_while_a_batch_derives_the_old_one_reaches_the_journey(
    postgres_engine: Engine, pack: RulePack, tmp_path: Path
) -> None:
    """A derivation batch holding version 1 of a Patient while a pull stores version 2:
    the batch must not clear version 2's flag, or the journey keeps version 1."""
    engine = postgres_engine

    def store(name: str) -> None:
        path = write_ndjson(tmp_path / f"{name}.ndjson", patient("p1", name=[{"family": name}]))
        IngestPipeline(engine, pack, "clinic", 1 << 20).run([path])

    store("Older")
    flag_all(engine)  # version 1 waits for derivation again
    holding, go_on = threading.Event(), threading.Event()

    def derive_old_version() -> None:
        with engine.begin() as conn:
            hold(conn, DERIVE, utc_now())
            batch = pending_resources(conn, "Patient", 10)
            holding.set()
            go_on.wait(10)  # deriving: version 2 arrives meanwhile
            mark_derived(conn, [resource.key for resource in batch])

    batch = threading.Thread(target=derive_old_version)
    batch.start()
    assert holding.wait(10)
    newer = threading.Thread(target=store, args=("Newer",))  # stores, then derives
    newer.start()
    newer.join(1.0)  # without the row lock it is stored by now, and flagged
    go_on.set()
    batch.join(10)
    newer.join(30)
    with engine.connect() as conn:
        shown = conn.execute(select(person_links.c.display_name)).scalars().all()
    assert shown == ["Newer"]
    assert pending_count(engine) == 0
