"""Shared fixtures: the default rule pack, a fresh SQLite store per test, an importer."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import Engine

from integration.importer import Importer, ImportSummary
from integration.store.engine import open_store
from mappings.rulepack import RulePack, load_rule_pack

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="session")
def pack() -> RulePack:
    return load_rule_pack()


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    store = open_store(f"sqlite:///{tmp_path / 'journey.db'}")
    yield store
    store.dispose()


ImportFn = Callable[..., ImportSummary]


@pytest.fixture
def import_files(engine: Engine, pack: RulePack) -> ImportFn:
    def run(
        *paths: Path | str, source: str = "test-source", max_bytes: int = 1 << 20
    ) -> ImportSummary:
        return Importer(engine, pack, source, max_bytes, batch_size=50).run(list(paths))

    return run


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


def encounter(
    eid: str, patient_id: str, klass: str = "AMB", start: str = "2025-03-01T10:00:00Z", **extra: Any
) -> dict[str, Any]:
    return {
        "resourceType": "Encounter",
        "id": eid,
        "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": klass},
        "subject": {"reference": f"Patient/{patient_id}"},
        "period": {"start": start},
        **extra,
    }
