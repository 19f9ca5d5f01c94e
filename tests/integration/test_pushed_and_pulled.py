"""One resource arriving both ways: pushed by the provider and pulled from its server."""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path

import pytest
from sqlalchemy import Connection, Engine, func, select

from integration.config import Settings
from integration.ingest.pipeline import IngestPipeline
from integration.push.bundle import PlannedWrite
from integration.push.service import PushService, WriteResult, new_id
from integration.store.pushed import StoredVersion
from integration.store.schema import current_resources, raw_resources
from mappings.rulepack import RulePack
from tests.conftest import encounter, patient, write_ndjson


def put(resource: dict[str, object]) -> PlannedWrite:
    return PlannedWrite(
        0, "PUT", str(resource["resourceType"]), str(resource["id"]), resource, None, None, None
    )


def current_version(engine: Engine, resource_id: str) -> str:
    with engine.connect() as conn:
        return str(
            conn.execute(
                select(raw_resources.c.version_key)
                .join(current_resources, current_resources.c.raw_id == raw_resources.c.id)
                .where(current_resources.c.resource_id == resource_id)
            ).scalar_one()
        )


def test_pushed_and_pulled_versions_are_both_kept_and_the_newest_is_current(
    engine: Engine, pack: RulePack, tmp_path: Path
) -> None:
    push = PushService(engine, pack, Settings(max_resource_bytes=1 << 20))
    push.write_one("ehr", put(patient("p1")))
    push.write_one("ehr", put(encounter("e1", "p1", klass="AMB")))
    assert current_version(engine, "e1").startswith("p:")

    def pull(version: str, updated: str, klass: str) -> IngestPipeline:
        pulled = encounter(
            "e1", "p1", klass=klass, meta={"versionId": version, "lastUpdated": updated}
        )
        importer = IngestPipeline(engine, pack, "ehr", 1 << 20)
        summary = importer.run([write_ndjson(tmp_path / f"v{version}.ndjson", pulled)])
        assert summary.by_type["Encounter"].changed == 1  # a new version of a known resource
        return importer

    pull("7", "2020-01-01T00:00:00Z", "EMER")  # older than the push: kept, not current
    assert current_version(engine, "e1").startswith("p:")
    pull("8", "2099-01-01T00:00:00Z", "HH")  # newer: current
    assert current_version(engine, "e1") == "v:8"
    with engine.connect() as conn:
        versions = conn.execute(
            select(func.count()).where(raw_resources.c.resource_id == "e1")
        ).scalar_one()
    assert versions == 3  # nothing lost either way


def test_pushing_and_pulling_the_same_resource_at_once_never_conflicts(
    engine: Engine, pack: RulePack, tmp_path: Path
) -> None:
    push = PushService(engine, pack, Settings(max_resource_bytes=1 << 20))
    push.write_one("ehr", put(patient("p1")))
    files = [
        write_ndjson(
            tmp_path / f"pull{n}.ndjson",
            encounter(
                "e1", "p1", meta={"versionId": str(n), "lastUpdated": f"2024-01-{n:02}T00:00:00Z"}
            ),
        )
        for n in range(1, 21)
    ]
    failures: list[BaseException] = []

    def pushing() -> None:
        try:
            for n in range(20):
                push.write_one(
                    "ehr", put(encounter("e1", "p1", start=f"2025-03-{n + 1:02}T10:00:00Z"))
                )
        except BaseException as exc:
            failures.append(exc)

    def pulling() -> None:
        try:
            for path in files:
                IngestPipeline(engine, pack, "ehr", 1 << 20).run([path])
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=pushing), threading.Thread(target=pulling)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not failures, failures
    with engine.connect() as conn:
        raw = conn.execute(
            select(func.count()).where(raw_resources.c.resource_id == "e1")
        ).scalar_one()
        current = conn.execute(
            select(func.count()).where(current_resources.c.resource_id == "e1")
        ).scalar_one()
    assert (raw, current) == (40, 1)  # 20 pushed + 20 pulled versions, one current
    # The pushes are stamped now, after every pulled lastUpdated: a pushed one is current.
    assert current_version(engine, "e1").startswith("p:")


def test_two_processes_creating_one_patient_conditionally_at_once_create_it_once(
    engine: Engine, pack: RulePack, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two services stand for two API processes: each takes only its own pushes in turn.
    services = [PushService(engine, pack, Settings(max_resource_bytes=1 << 20)) for _ in range(2)]
    both_looked = threading.Barrier(2)
    look = PushService._matches

    def look_then_wait(
        self: PushService, conn: Connection, source: str, write: PlannedWrite
    ) -> list[StoredVersion]:
        found = look(self, conn, source, write)
        # Without the push lock both find no match here, then both create. With it the
        # other push waits for the lock, so this wait times out (a broken barrier).
        with contextlib.suppress(threading.BrokenBarrierError):
            both_looked.wait(timeout=3)
        return found

    monkeypatch.setattr(PushService, "_matches", look_then_wait)
    member = patient("ignored") | {"identifier": [{"system": "urn:oid:1.2.3", "value": "MRN-R"}]}
    results: list[WriteResult] = []
    failures: list[BaseException] = []

    def create(service: PushService) -> None:
        write = PlannedWrite(
            0,
            "POST",
            "Patient",
            new_id(),
            dict(member),
            None,
            "identifier=urn:oid:1.2.3|MRN-R",
            None,
        )
        try:
            results.append(service.write_one("clinic", write))
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=create, args=(service,)) for service in services]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not failures, failures
    assert sorted(result.status for result in results) == [200, 201]
    with engine.connect() as conn:
        held = conn.execute(
            select(func.count())
            .select_from(current_resources)
            .where(
                current_resources.c.source == "clinic",
                current_resources.c.resource_type == "Patient",
            )
        ).scalar_one()
    assert held == 1
