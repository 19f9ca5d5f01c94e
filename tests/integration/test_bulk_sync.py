"""Bulk Data $export sync: against a real sekmet-fhir on loopback, and respx for the faults."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import respx
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select

from connectors.files import RawItem
from integration.api.app import create_app
from integration.config import Settings
from integration.ingest import pipeline as importer_module
from integration.ingest.pipeline import IngestPipeline, IngestSummary
from integration.ingest.pool import IntakePool
from integration.sources import SourceConfig
from integration.store import queries
from integration.store.bulk_state import ExportInProgress, load_export, start_export
from integration.store.engine import open_store
from integration.store.schema import job_records, raw_resources
from integration.store.sync_state import load_checkpoint
from integration.sync import bulk as bulk_module
from integration.sync.bulk import EXPORT_STATE
from integration.sync.runners import sync_source
from integration.sync.summary import SyncSummary
from mappings.rulepack import RulePack
from tests.conftest import encounter
from tests.servers import Sekmet, seeded_sekmet

BASE = "https://bulk.example/fhir"
STATUS = "https://bulk.example/status/1"


@pytest.fixture(scope="module")
def sekmet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sekmet]:
    yield from seeded_sekmet(tmp_path_factory.mktemp("sekmet-bulk"), 10)


def bulk_source(base_url: str, **extra: Any) -> SourceConfig:
    return SourceConfig.model_validate(
        {
            "name": "payer-bulk",
            "kind": "payer",
            "base_url": base_url,
            "mode": "bulk",
            "resource_types": ["Patient", "Encounter"],
            **extra,
        }
    )


async def run(engine: Engine, pack: RulePack, source: SourceConfig, full: bool = False) -> Any:
    # Small store batches, so that files of a few dozen lines go through the worker pool.
    settings = Settings(batch_size=7, import_batch_size=3, validation_processes=2)
    return await sync_source(engine, pack, settings, source, full=full)


def raw_count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(raw_resources)).scalar_one())


@pytest.mark.slow
async def test_a_bulk_export_lands_in_the_journey_then_only_changes_come(
    sekmet: Sekmet, engine: Engine, pack: RulePack, monkeypatch: pytest.MonkeyPatch
) -> None:
    pools: list[IntakePool] = []

    class CountedPool(IntakePool):
        def __init__(self, processes: int, validate: bool, max_depth: int) -> None:
            super().__init__(processes, validate, max_depth)
            pools.append(self)

    monkeypatch.setattr(importer_module, "IntakePool", CountedPool)
    source = bulk_source(sekmet.base_url)
    first = await run(engine, pack, source)
    assert not first.failed, (first.error, first.types, first.notes)
    # Both files (downloaded at once) were examined by one pool of worker processes.
    assert len(pools) == 1
    patients = first.stored.by_type["Patient"].new
    assert patients >= 10
    assert first.stored.by_type["Encounter"].new >= 5
    assert first.types["Patient"].pages == 1  # one NDJSON file per type
    with engine.connect() as conn:
        since = load_checkpoint(conn, "payer-bulk", EXPORT_STATE)
        assert since is not None  # the manifest's transactionTime
        assert load_export(conn, "payer-bulk") is None  # finished: nothing to resume
        people = queries.list_people(conn, 100)
    assert len(people) == patients

    sekmet.seed(2)
    second = await run(engine, pack, source)
    assert not second.failed, (second.error, second.types)
    # _since: only what changed since the first export (the new patients and visits).
    assert second.stored.by_type["Patient"].new == 2
    assert second.types["Patient"].fetched <= 3


def pipelines_mapping(patched: pytest.MonkeyPatch, while_storing: bool) -> list[IngestPipeline]:
    """Bulk syncs' pipelines from now on map while storing (where they would) or after
    it; the list collects them."""
    pipelines: list[IngestPipeline] = []
    pipeline_for = bulk_module.ingest_pipeline

    def chosen(*args: Any, **kwargs: Any) -> IngestPipeline:
        pipeline = pipeline_for(*args, **kwargs)
        pipeline.derives_while_storing = pipeline.derives_while_storing and while_storing
        pipelines.append(pipeline)
        return pipeline

    patched.setattr(bulk_module, "ingest_pipeline", chosen)
    return pipelines


def journey_of(engine: Engine) -> tuple[set[tuple[str, str, str, bool]], int]:
    """The job records (id, resource, job, excluded) and how many people."""
    with engine.connect() as conn:
        records = {
            (row.id, row.resource_id, row.job, bool(row.excluded))
            for row in conn.execute(select(job_records))
        }
        people = len(queries.list_people(conn, 1000))
    return records, people


@pytest.mark.slow
@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
async def test_a_validated_export_on_sqlite_is_mapped_while_its_files_are_stored(
    sekmet: Sekmet, engine: Engine, pack: RulePack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As `journey import` does: both files (downloaded at once) are mapped in rounds
    while the worker processes validate their next batches, one round at a time, and
    the journey and the summary are those of mapping once the files are stored."""
    at_once: list[int] = []  # for each mapping call: how many were running
    running: list[int] = []
    update_journey = importer_module.update_journey

    def counted(*args: Any, **kwargs: Any) -> Any:
        running.append(1)
        try:
            at_once.append(len(running))
            return update_journey(*args, **kwargs)
        finally:
            running.pop()

    monkeypatch.setattr(importer_module, "update_journey", counted)
    source = bulk_source(sekmet.base_url)
    # Batches of one line: a round after most of them, whichever file it is in (a
    # round is skipped while the other file's storing runs one).
    settings = Settings(batch_size=7, import_batch_size=1, validation_processes=2)
    during = await sync_source(engine, pack, settings, source)
    assert not during.failed, (during.error, during.types, during.notes)
    assert len(at_once) >= 2, "rounds ran while the files were stored"
    assert max(at_once) == 1, "one round at a time"

    monkeypatch.undo()
    after_store = open_store(f"sqlite:///{tmp_path / 'mapped-after.db'}")
    pipelines_mapping(monkeypatch, while_storing=False)
    after = await sync_source(after_store, pack, settings, source)
    assert not after.failed, (after.error, after.types, after.notes)
    assert during.stored.by_type == after.stored.by_type
    assert during.derive == after.derive
    assert during.derive.resources == raw_count(engine)
    assert journey_of(engine) == journey_of(after_store)
    assert journey_of(engine)[1] == during.stored.by_type["Patient"].new
    after_store.dispose()


# ---- faults sekmet will not produce: respx ----


def manifest(**extra: Any) -> dict[str, Any]:
    return {
        "transactionTime": "2026-11-01T00:00:00Z",
        "request": f"{BASE}/$export",
        "requiresAccessToken": True,
        "output": [{"type": "Patient", "url": "https://files.example/patients.ndjson"}],
        "error": [],
        **extra,
    }


def ndjson(*resources: dict[str, Any]) -> bytes:
    return b"".join(orjson.dumps(r) + b"\n" for r in resources)


def patient(pid: str) -> dict[str, Any]:
    return {"resourceType": "Patient", "id": pid, "gender": "female"}


@pytest.fixture
def mock() -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_called=False) as router:
        router.get(f"{BASE}/$export").mock(
            return_value=httpx.Response(202, headers={"Content-Location": STATUS})
        )
        router.delete(STATUS).mock(return_value=httpx.Response(202))
        yield router


def fast(source: SourceConfig) -> SourceConfig:
    return source.model_copy(update={"max_attempts": 2})


async def test_a_truncated_last_line_is_quarantined_and_the_rest_kept(
    mock: respx.MockRouter, engine: Engine, pack: RulePack
) -> None:
    mock.get(STATUS).mock(return_value=httpx.Response(200, json=manifest()))
    body = ndjson(patient("a"), patient("b")) + b'{"resourceType": "Patient", "id": "c", "gen'
    mock.get("https://files.example/patients.ndjson").mock(
        return_value=httpx.Response(200, content=body)
    )
    summary = await run(engine, pack, fast(bulk_source(BASE)))
    counts = summary.stored.by_type
    assert counts["Patient"].new == 2
    assert counts["(unreadable)"].quarantined == 1
    assert "truncated line" in str(summary.stored.problems[0])
    assert "line 3" in str(summary.stored.problems[0])


async def test_a_missing_file_is_reported_and_the_export_kept_for_the_next_run(
    mock: respx.MockRouter, engine: Engine, pack: RulePack
) -> None:
    files = [
        {"type": "Patient", "url": "https://files.example/patients.ndjson"},
        {"type": "Encounter", "url": "https://files.example/gone.ndjson"},
    ]
    mock.get(STATUS).mock(return_value=httpx.Response(200, json=manifest(output=files)))
    mock.get("https://files.example/patients.ndjson").mock(
        return_value=httpx.Response(200, content=ndjson(patient("a")))
    )
    mock.get("https://files.example/gone.ndjson").mock(return_value=httpx.Response(404))
    summary = await run(engine, pack, fast(bulk_source(BASE)))
    assert summary.failed
    assert "gone.ndjson" in (summary.types["Encounter"].error or "")
    assert "404" in (summary.types["Encounter"].error or "")
    assert summary.stored.by_type["Patient"].new == 1  # what arrived is kept
    with engine.connect() as conn:
        job = load_export(conn, "payer-bulk")
        assert job is not None
        assert job.files_done == ["https://files.example/patients.ndjson"]
        # No checkpoint: the next export must not skip what the lost file held.
        assert load_checkpoint(conn, "payer-bulk", EXPORT_STATE) is None
    # The status view says an export is waiting to be resumed.
    settings = Settings(api_keys=["k"], sources=[fast(bulk_source(BASE))])
    with TestClient(create_app(settings, engine)) as api:
        listed = api.get("/sources", headers={"Authorization": "Bearer k"}).json()["items"]
    assert listed[0]["export_in_progress"]["files_stored"] == 1
    assert listed[0]["export_in_progress"]["transaction_time"] == "2026-11-01T00:00:00Z"


async def test_an_interrupted_sync_resumes_the_same_export_and_skips_stored_files(
    mock: respx.MockRouter, engine: Engine, pack: RulePack
) -> None:
    files = [
        {"type": "Patient", "url": "https://files.example/patients.ndjson"},
        {"type": "Encounter", "url": "https://files.example/encounters.ndjson"},
    ]
    mock.get(STATUS).mock(return_value=httpx.Response(200, json=manifest(output=files)))
    patients = mock.get("https://files.example/patients.ndjson").mock(
        return_value=httpx.Response(200, content=ndjson(patient("a"), patient("b")))
    )
    encounters = mock.get("https://files.example/encounters.ndjson").mock(
        side_effect=[httpx.Response(503), httpx.Response(503), httpx.Response(200, content=b"")]
    )
    first = await run(engine, pack, fast(bulk_source(BASE)))
    assert first.failed  # the encounter file failed twice
    kick_offs = mock.routes[0].call_count
    second = await run(engine, pack, fast(bulk_source(BASE)))
    assert not second.failed, (second.error, second.types)
    assert mock.routes[0].call_count == kick_offs  # no new export: the same one resumed
    assert patients.call_count == 1  # stored the first time, not downloaded again
    assert encounters.call_count == 3
    assert any("resumed the export" in note for note in second.notes)
    assert raw_count(engine) == 2


FILES = "https://files.example"
PATIENTS = ndjson(*(patient(f"p{n}") for n in range(6)))
VISITS = ndjson(*(encounter(f"e{n}", f"p{n}") for n in range(6)))
LATER_PATIENTS = ndjson(*(patient(f"q{n}") for n in range(6)))
E1_DELETED = orjson.dumps(
    {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [{"request": {"method": "DELETE", "url": "Encounter/e1"}}],
    }
)


def export_of(output: dict[str, bytes], deleted: bytes | None = None) -> dict[str, Any]:
    """A manifest of these output files (by type), and a deleted file if given."""
    return manifest(
        output=[{"type": kind, "url": f"{FILES}/{kind}.ndjson"} for kind in output],
        deleted=[{"type": "Bundle", "url": f"{FILES}/deleted.ndjson"}] if deleted else [],
    )


async def sync_exports(
    mock: respx.MockRouter,
    engine: Engine,
    pack: RulePack,
    exports: list[dict[str, bytes]],
    monkeypatch: pytest.MonkeyPatch,
    while_storing: bool = True,
) -> list[tuple[Any, bool]]:
    """Each export in turn (its files by type; "deleted" for a deleted file), in batches
    of one line: each sync's mapping counts, and whether rounds mapped while storing."""
    manifests = [
        export_of({k: v for k, v in files.items() if k != "deleted"}, files.get("deleted"))
        for files in exports
    ]
    mock.get(STATUS).mock(side_effect=[httpx.Response(200, json=m) for m in manifests])
    for kind in ("Patient", "Encounter", "deleted"):
        bodies = [files[kind] for files in exports if kind in files]
        mock.get(f"{FILES}/{kind}.ndjson").mock(
            side_effect=[httpx.Response(200, content=body) for body in bodies]
        )
    settings = Settings(batch_size=7, import_batch_size=1, validation_processes=2)
    summaries = []
    with monkeypatch.context() as patched:
        pipelines = pipelines_mapping(patched, while_storing)
        for _files in exports:
            done = await sync_source(engine, pack, settings, fast(bulk_source(BASE)))
            assert not done.failed, (done.error, done.types, done.notes)
            summaries.append((done.derive, pipelines[-1].rounds_run))
    return summaries


@pytest.mark.slow
@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
async def test_mapping_while_storing_counts_what_mapping_after_counts(
    mock: respx.MockRouter,
    engine: Engine,
    pack: RulePack,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two stores take the same exports, one mapping while storing, one after: a full
    export, then a `_since` one with new Patients and a deleted file (its tombstone
    takes the Encounter's records out of the journey itself, nothing to map). Both
    summaries count the same."""
    exports = [
        {"Patient": PATIENTS, "Encounter": VISITS},
        {"Patient": LATER_PATIENTS, "deleted": E1_DELETED},
    ]
    during = await sync_exports(mock, engine, pack, exports, monkeypatch)
    after_store = open_store(f"sqlite:///{tmp_path / 'mapped-after.db'}")
    after = await sync_exports(mock, after_store, pack, exports, monkeypatch, False)
    after_store.dispose()
    assert [ran for _, ran in during] == [True, True]
    assert [ran for _, ran in after] == [False, False]
    assert [counts for counts, _ in during] == [counts for counts, _ in after]
    assert during[1][0].resources == 6  # the new Patients


@pytest.mark.slow
@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
async def test_with_resources_waiting_an_export_is_mapped_after_its_storing(
    mock: respx.MockRouter, engine: Engine, pack: RulePack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run killed after storing, before its mapping, left resources waiting. The next
    sync maps them too: it maps once its files are stored, and counts them all (a round
    would map them, and a recount of its own files leave them out)."""
    waiting = IngestPipeline(engine, pack, "payer-bulk", 1 << 20)
    stored = IngestSummary("payer-bulk")
    waiting.store(
        [RawItem("killed-run", str(n), resource=patient(f"w{n}")) for n in range(2)],
        stored,
    )
    assert stored.total("new") == 2
    [(counts, ran)] = await sync_exports(
        mock, engine, pack, [{"Patient": PATIENTS, "Encounter": VISITS}], monkeypatch
    )
    assert not ran
    assert counts.resources == 14
    assert journey_of(engine)[1] == 8


async def test_an_export_the_server_forgot_is_started_again_with_a_message(
    mock: respx.MockRouter, engine: Engine, pack: RulePack
) -> None:
    with engine.begin() as conn:
        start_export(
            conn,
            ExportInProgress(
                "payer-bulk", "https://bulk.example/status/old", "2026-11-01T00:00:00Z", None
            ),
        )
    mock.get("https://bulk.example/status/old").mock(return_value=httpx.Response(404))
    mock.get(STATUS).mock(return_value=httpx.Response(200, json=manifest()))
    mock.get("https://files.example/patients.ndjson").mock(
        return_value=httpx.Response(200, content=ndjson(patient("a")))
    )
    summary = await run(engine, pack, fast(bulk_source(BASE)))
    assert not summary.failed, (summary.error, summary.types)
    assert any("no longer knew the export" in note for note in summary.notes)
    assert summary.stored.by_type["Patient"].new == 1


async def test_a_server_that_says_202_forever_is_bounded_by_the_deadline(
    mock: respx.MockRouter, engine: Engine, pack: RulePack
) -> None:
    still = mock.get(STATUS).mock(
        return_value=httpx.Response(202, headers={"X-Progress": "45%", "Retry-After": "1"})
    )
    source = fast(bulk_source(BASE, export={"deadline_seconds": 2.5}))
    summary = await run(engine, pack, source)
    assert summary.error is not None
    assert "not complete after 2 s" in summary.error or "not complete after 3 s" in summary.error
    assert "45%" in summary.error
    assert 2 <= still.call_count <= 4
    with engine.connect() as conn:
        assert load_export(conn, "payer-bulk") is not None  # the next sync resumes polling


async def test_a_kick_off_refused_with_an_operation_outcome_says_why(
    engine: Engine, pack: RulePack
) -> None:
    refusal = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "not-supported", "diagnostics": "no _typeFilter"}],
    }
    with respx.mock() as router:
        router.get(f"{BASE}/$export").mock(return_value=httpx.Response(400, json=refusal))
        summary = await run(engine, pack, fast(bulk_source(BASE)))
    assert summary.error is not None
    assert "HTTP 400" in summary.error
    assert "no _typeFilter" in summary.error


async def test_error_files_are_reported_and_the_outputs_imported(
    mock: respx.MockRouter, engine: Engine, pack: RulePack
) -> None:
    errors = [{"type": "OperationOutcome", "url": "https://files.example/errors.ndjson"}]
    mock.get(STATUS).mock(return_value=httpx.Response(200, json=manifest(error=errors)))
    mock.get("https://files.example/patients.ndjson").mock(
        return_value=httpx.Response(200, content=ndjson(patient("a")))
    )
    outcome = {
        "resourceType": "OperationOutcome",
        "issue": [
            {"severity": "error", "code": "processing", "diagnostics": "Encounter e9 unreadable"}
        ],
    }
    mock.get("https://files.example/errors.ndjson").mock(
        return_value=httpx.Response(200, content=ndjson(outcome))
    )
    summary: SyncSummary = await run(engine, pack, fast(bulk_source(BASE)))
    assert summary.stored is not None
    assert summary.stored.by_type["Patient"].new == 1
    assert any("Encounter e9 unreadable" in note for note in summary.notes)


async def test_files_without_require_access_token_are_fetched_without_our_token(
    mock: respx.MockRouter, engine: Engine, pack: RulePack, tmp_path: Path
) -> None:
    mock.get(STATUS).mock(
        return_value=httpx.Response(200, json=manifest(requiresAccessToken=False))
    )
    download = mock.get("https://files.example/patients.ndjson").mock(
        return_value=httpx.Response(200, content=ndjson(patient("a")))
    )
    token = tmp_path / "token"
    token.write_text("s3cret-token")
    source = fast(bulk_source(BASE, auth={"type": "bearer", "token_file": str(token)}))
    summary = await run(engine, pack, source)
    assert not summary.failed, (summary.error, summary.types)
    assert mock.routes[0].calls.last.request.headers["Authorization"] == "Bearer s3cret-token"
    assert "Authorization" not in download.calls.last.request.headers


@pytest.mark.slow
def test_journey_sync_killed_while_polling_resumes_and_loses_nothing(
    sekmet: Sekmet, tmp_path: Path, store_url: str
) -> None:
    """A real `journey sync` process, SIGKILLed once the export is kicked off."""
    config = tmp_path / "journey.toml"
    config.write_text(
        "[[sources]]\n"
        'name = "payer-bulk"\nkind = "payer"\nmode = "bulk"\n'
        f'base_url = "{sekmet.base_url}"\n'
        'resource_types = ["Patient", "Encounter"]\n',
        encoding="utf-8",
    )
    env = {
        **os.environ,
        "JOURNEY_CONFIG": str(config),
        "JOURNEY_DATABASE_URL": store_url,
    }
    journey = str(Path(sys.executable).parent / "journey")
    process = subprocess.Popen(
        [journey, "sync"], env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 60
    engine = None
    while True:
        assert time.monotonic() < deadline, "the export was never kicked off"
        assert process.poll() is None, "sync ended before it could be killed"
        engine = engine or open_store(store_url)
        with engine.connect() as conn:
            if load_export(conn, "payer-bulk") is not None:
                break
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)
    assert process.stderr is not None
    process.stderr.close()
    assert engine is not None
    with engine.connect() as conn:
        status_url = load_export(conn, "payer-bulk")
    assert status_url is not None

    again = subprocess.run(
        [journey, "sync"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "resumed the export" in again.stdout
    with engine.connect() as conn:
        assert load_export(conn, "payer-bulk") is None
        stored = conn.execute(
            select(raw_resources.c.resource_type, func.count()).group_by(
                raw_resources.c.resource_type
            )
        ).all()
    engine.dispose()
    counts = {kind: int(n) for kind, n in stored}
    on_server = {
        kind: httpx.get(f"{sekmet.base_url}/{kind}", params={"_summary": "count"}).json()["total"]
        for kind in ("Patient", "Encounter")
    }
    assert counts == on_server  # everything, once
