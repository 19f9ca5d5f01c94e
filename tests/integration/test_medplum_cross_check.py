"""Cross-check with a second, independent FHIR implementation: Medplum's FHIR router
(in-memory repository, from npm) behind a small loopback HTTP wrapper.

The same synthetic data, imported from files and synced from Medplum, must give
the same journey. Medplum caps a search page and writes no next link: with a page
size under its total, the sync must say so rather than stop quietly.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from sqlalchemy import Engine

from integration.cli.demo_population import PROVIDER, generate
from integration.config import Settings
from integration.ingest.pipeline import IngestPipeline
from integration.sources import SourceConfig
from integration.store.engine import open_store
from integration.sync.runners import sync_source
from mappings.rulepack import RulePack
from tests.conftest import record_keys
from tests.servers import free_port, wait_until_up

PEER = Path(__file__).parent.parent / "peers" / "medplum"
TYPES = ["Patient", "Encounter", "QuestionnaireResponse", "Condition"]


@pytest.fixture(scope="module")
def clinic_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("medplum-seed")
    path = folder / "clinic.ndjson"
    resources = [r for r in generate(seed=3, people=10)[PROVIDER] if r["resourceType"] in TYPES]
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in resources))
    return path


@pytest.fixture(scope="module")
def medplum(clinic_data: Path) -> Iterator[str]:
    npm, node = shutil.which("npm"), shutil.which("node")
    assert npm, "npm is needed to install the Medplum peer"
    assert node, "Node.js is needed to run the Medplum peer"
    if not (PEER / "node_modules" / "@medplum" / "fhir-router").is_dir():
        subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--silent"], cwd=PEER, check=True, timeout=600
        )
    port = free_port()
    process = subprocess.Popen(
        [node, "server.mjs", str(port), str(clinic_data)],
        cwd=PEER,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base_url = f"http://127.0.0.1:{port}/fhir"
    try:
        wait_until_up(f"{base_url}/metadata", process, "the Medplum peer")
        yield base_url
    finally:
        process.terminate()
        process.wait(timeout=20)


@pytest.mark.slow
async def test_synced_from_medplum_equals_imported_from_files(
    medplum: str, clinic_data: Path, engine: Engine, pack: RulePack, tmp_path: Path
) -> None:
    config = SourceConfig.model_validate(
        {
            "name": "medplum",
            "kind": "provider",
            "base_url": medplum,
            "mode": "rest",
            "resource_types": TYPES,
            "page_size": 1000,
        }
    )
    summary = await sync_source(engine, pack, Settings(), config)
    assert not summary.failed, summary.types
    reference = open_store(f"sqlite:///{tmp_path / 'files.db'}")
    try:
        imported = IngestPipeline(reference, pack, "files", 1 << 20).run([clinic_data])
        assert imported.total("quarantined") == 0
        expected = record_keys(reference)
    finally:
        reference.dispose()
    assert expected
    assert record_keys(engine) == expected


@pytest.mark.slow
async def test_a_capped_page_without_next_link_is_reported(
    medplum: str, clinic_data: Path, engine: Engine, pack: RulePack
) -> None:
    encounters = clinic_data.read_text().count('"resourceType":"Encounter"')
    config = SourceConfig.model_validate(
        {
            "name": "medplum",
            "kind": "provider",
            "base_url": medplum,
            "mode": "rest",
            "resource_types": ["Encounter"],
            "page_size": 5,
        }
    )
    summary = await sync_source(engine, pack, Settings(), config)
    state = summary.types["Encounter"]
    assert state.fetched < encounters
    assert any("no next link" in warning for warning in state.warnings)
