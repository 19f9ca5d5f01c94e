"""Real-world shapes from independent generators, run by the tests:

- tietai-synthea (a Python port of Synthea) writes one transaction Bundle per
  patient, with urn:uuid references and the full US Core spread of types;
- clinosim writes Bulk Data style NDJSON, one file per type, from a simulated
  hospital (AMB / EMER / IMP encounters, ICD-10-CM reasons).

What is valid R4 must import, every Encounter must land in a journey, and what
is not valid R4 (clinosim writes some elements R4 lacks) must be quarantined
with its FHIR path, never dropped."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from integration.store import queries
from integration.store.quarantine import entries as quarantine_entries
from integration.store.schema import current_resources, job_records
from tests.conftest import ImportFn

SYNTHEA = str(Path(sys.executable).parent / "synthea")
CLINOSIM = str(Path(sys.executable).parent / "clinosim")


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
        encounter_jobs = dict(
            conn.execute(
                select(job_records.c.job, func.count())
                .where(job_records.c.resource_type == "Encounter")
                .group_by(job_records.c.job)
            ).all()
        )
        people = queries.list_people(conn, 100)
        journeys = [queries.journey(conn, person["id"], 10_000) for person in people]
    assert sum(encounter_jobs.values()) == encounters
    # Synthea's claims and EOBs are records too.
    assert sum(by_job.values()) > encounters
    assert encounter_jobs.get("unclassified", 0) < encounters * 0.1, encounter_jobs
    assert {"diagnose", "treat", "keep_well"} <= set(encounter_jobs)
    assert sum(len(j) for j in journeys) == sum(by_job.values())


@pytest.fixture(scope="session")
def clinosim_output(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("clinosim")
    subprocess.run(
        [
            *(CLINOSIM, "simulate", "-o", str(out), "-p", "120", "-s", "7", "--country", "US"),
            *("--start", "2025-01-01", "--end", "2025-02-15", "--format", "fhir-r4"),
        ],
        check=True,
        capture_output=True,
        timeout=600,
    )
    assert (out / "fhir_r4" / "Encounter.ndjson").is_file(), "clinosim wrote no Encounters"
    return out / "fhir_r4"


@pytest.mark.slow
def test_clinosim_bulk_ndjson_imports_and_invalid_r4_is_quarantined_with_paths(
    clinosim_output: Path, engine: Engine, import_files: ImportFn
) -> None:
    lines = {
        path.stem: sum(1 for line in path.read_bytes().splitlines() if line.strip())
        for path in clinosim_output.glob("*.ndjson")
    }
    summary = import_files(clinosim_output, source="clinosim")
    for resource_type in ("Patient", "Encounter", "Condition"):
        counts = summary.by_type[resource_type]
        assert (counts.new, counts.quarantined) == (lines[resource_type], 0), resource_type
    # Nothing dropped: every line is stored or quarantined, and so is each .json file
    # beside them (the export manifest and clinosim's metadata are not resources).
    json_files = list(clinosim_output.glob("*.json"))
    accounted = sum(summary.total(a) for a in ("new", "changed", "unchanged", "quarantined"))
    assert accounted == sum(lines.values()) + len(json_files)
    with engine.connect() as conn:
        quarantined = quarantine_entries(conn, 10_000)
    assert len(quarantined) == summary.total("quarantined")
    manifest = [e for e in quarantined if e["origin"].endswith("manifest.json")]
    assert manifest[0]["error"].startswith("a Bulk Data export manifest")
    rejected = [e for e in quarantined if e["origin"].endswith(".ndjson")]
    assert rejected, "clinosim writes some non-R4 elements; expected them quarantined"
    assert all(e["fhir_path"] and e["location"].startswith("line ") for e in rejected)
    assert summary.orphan_count == 0
    with engine.connect() as conn:
        rows = conn.execute(
            select(job_records.c.job, job_records.c.setting, func.count())
            .where(job_records.c.resource_type == "Encounter")
            .group_by(job_records.c.job, job_records.c.setting)
        ).all()
    settings = {setting for _, setting, _ in rows}
    assert {"ambulatory", "emergency"} <= settings
    assert sum(n for *_, n in rows) == lines["Encounter"]
    unclassified = sum(n for job, _, n in rows if job == "unclassified")
    assert unclassified < lines["Encounter"] * 0.1, rows
