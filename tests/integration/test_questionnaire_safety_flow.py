"""Questionnaire safety end to end: imported responses reach the API and `journey show`
with their flags and bands; withdrawn and superseded ones leave the journey but are
listed, with the reason, when asked for."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from integration.api.app import create_app
from integration.config import Settings
from tests.conftest import ImportFn, patient, write_ndjson
from tests.mappings.test_questionnaire_safety import phq9, total_observation

KEY = "test-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
pytestmark = pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)


@pytest.fixture
def client(engine: Engine) -> Iterator[TestClient]:
    settings = Settings(api_keys=[KEY], database_url=str(engine.url))
    with TestClient(create_app(settings, engine)) as test_client:
        yield test_client


@pytest.fixture
def imported(tmp_path: Path, import_files: ImportFn) -> Path:
    identifier = {"system": "urn:clinic:forms", "value": "F-7"}
    resources: list[dict[str, Any]] = [
        patient("p1"),
        # A low total with item 9 answered "several days": flagged, whatever the total.
        phq9("risk", [0, 0, 1, 0, 0, 0, 0, 0, 1], authored="2025-01-05T10:00:00Z"),
        phq9("wrong", [3] * 9, status="entered-in-error", authored="2025-02-01T10:00:00Z"),
        phq9("draft", [2] * 8 + [0], identifier=identifier, authored="2025-03-01T10:00:00Z"),
        phq9(
            "final",
            [1] * 8 + [0],
            status="amended",
            identifier=identifier,
            authored="2025-03-01T11:00:00Z",
        ),
        total_observation("gad-total", "70274-6", 16),
    ]
    return write_ndjson(tmp_path / "screens.ndjson", *resources)


def journey_of(client: TestClient, **params: Any) -> dict[str, dict[str, Any]]:
    [person] = client.get("/people", headers=AUTH).json()["items"]
    body = client.get(f"/people/{person['id']}/journey", headers=AUTH, params=params).json()
    return {item["source"]["resource_id"]: item for item in body["items"]}


def test_flags_bands_and_exclusions_reach_the_journey_api(
    client: TestClient, imported: Path, import_files: ImportFn
) -> None:
    import_files(imported)
    items = journey_of(client)
    assert set(items) == {"risk", "draft", "final", "gad-total"}
    assert items["risk"]["flags"] == ["self_harm_risk"]
    assert items["risk"]["job"] == "diagnose"
    assert (items["risk"]["score"], items["risk"]["band"]) == (2, "minimal")
    assert items["final"]["score"] == 8
    assert items["final"]["flags"] == []
    gad = items["gad-total"]
    assert (gad["instrument"], gad["score"], gad["band"]) == ("gad7", 16, "severe")
    assert gad["scores"] == [{"scale": "total", "value": 16.0, "band": "severe"}]
    assert gad["instrument_version"]

    assert items["draft"]["flags"] == ["superseded"]
    assert "final" in items["draft"]["reason"]["text"]
    everything = journey_of(client, include_excluded="true")
    assert set(everything) == {"risk", "wrong", "draft", "final", "gad-total"}
    assert everything["wrong"]["excluded"]
    assert "entered-in-error" in everything["wrong"]["reason"]["text"]

    [person] = client.get("/people", headers=AUTH).json()["items"]
    counts = client.get(f"/people/{person['id']}", headers=AUTH).json()["record_counts"]
    assert sum(counts.values()) == 4


def test_journey_show_makes_the_self_harm_flag_stand_out(
    tmp_path: Path, engine: Engine, imported: Path
) -> None:
    env = {"JOURNEY_DATABASE_URL": str(engine.url), "PATH": str(Path(sys.executable).parent)}
    journey = str(Path(sys.executable).parent / "journey")
    run = subprocess.run(
        [journey, "import", str(imported), "--source", "clinic"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    people = subprocess.run(
        [journey, "status"], capture_output=True, text=True, env=env, check=True
    )
    assert "people: 1" in people.stdout
    from integration.store import queries

    with engine.connect() as conn:
        [person] = queries.list_people(conn, 10)
    shown = subprocess.run(
        [journey, "show", person["id"]],
        capture_output=True,
        text=True,
        env={**env, "COLUMNS": "200"},
        check=True,
    ).stdout
    assert "SELF-HARM RISK" in shown
    assert "minimal" in shown
    assert "excluded" not in shown
    everything = subprocess.run(
        [journey, "show", person["id"], "--include-excluded"],
        capture_output=True,
        text=True,
        env={**env, "COLUMNS": "200"},
        check=True,
    ).stdout
    assert "entered-in-error" in everything
    assert "superseded" in shown
