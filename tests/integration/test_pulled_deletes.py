"""Deletions seen in pulls: a REST source's type history (sekmet-fhir, a real server
that serves `_history` with DELETE entries), Bulk exports' deleted files and the
reconciliation listing (respx, for what sekmet will not produce)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import respx
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from connectors.rest.search import history
from integration.api.app import create_app
from integration.config import Settings
from integration.sources import SourceConfig
from integration.store import queries
from integration.sync.runners import sync_source
from mappings.rulepack import RulePack
from tests.servers import Sekmet, seeded_sekmet

API_KEY = "pulled-deletes-key"
API = {"Authorization": f"Bearer {API_KEY}"}


@pytest.fixture
def sekmet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sekmet]:
    """One server per test and backend: each deletes on it."""
    yield from seeded_sekmet(tmp_path_factory.mktemp("sekmet-deletes"), 4)


def rest_source(base_url: str, **extra: Any) -> SourceConfig:
    return SourceConfig.model_validate(
        {
            "name": "ehr",
            "kind": "provider",
            "base_url": base_url,
            "mode": "rest",
            "page_size": 500,
            "overlap_seconds": 0,
            "resource_types": ["Patient", "Encounter"],
            **extra,
        }
    )


def journey(client: TestClient, person: str, **params: str) -> list[dict[str, Any]]:
    answer = client.get(f"/people/{person}/journey", headers=API, params=params)
    assert answer.status_code == 200, answer.text
    items: list[dict[str, Any]] = answer.json()["items"]
    return items


@pytest.mark.slow
async def test_a_resource_deleted_on_the_server_leaves_the_journey_at_the_next_sync(
    sekmet: Sekmet, engine: Engine, pack: RulePack
) -> None:
    config = rest_source(sekmet.base_url)
    first = await sync_source(engine, pack, Settings(), config)
    assert not first.failed, first.types
    assert not first.types["Encounter"].history  # the first sync searches everything
    with engine.connect() as conn:
        people = queries.list_people(conn, 100)
        held = [(p["id"], r) for p in people for r in queries.journey(conn, p["id"], 100)]
    person, record = next((p, r) for p, r in held if r["source"]["resource_type"] == "Encounter")
    encounter = record["source"]["resource_id"]
    assert httpx.delete(f"{sekmet.base_url}/Encounter/{encounter}").status_code in (200, 204)
    assert httpx.get(f"{sekmet.base_url}/Encounter/{encounter}").status_code == 410

    second = await sync_source(engine, pack, Settings(), config)
    assert not second.failed, second.types
    assert second.types["Encounter"].history
    assert not second.types["Encounter"].full
    assert second.types["Encounter"].deleted == 1
    assert second.types["Patient"].deleted == 0

    settings = Settings(api_keys=[API_KEY], database_url=str(engine.url))
    with TestClient(create_app(settings, engine)) as client:
        assert record["id"] not in {r["id"] for r in journey(client, person)}
        kept = {r["id"]: r for r in journey(client, person, include_excluded="true")}
        assert kept[record["id"]]["excluded"]
        assert kept[record["id"]]["removed_reason"] == "deleted by source"
        assert kept[record["id"]]["deleted_at"]

    # Read again (the overlap re-reads the deletion): nothing changes, nothing comes back.
    third = await sync_source(
        engine, pack, Settings(), rest_source(sekmet.base_url, overlap_seconds=3600)
    )
    assert not third.failed, third.types
    assert third.types["Encounter"].deleted == 0
    with engine.connect() as conn:
        assert record["id"] not in {r["id"] for r in queries.journey(conn, person, 100)}


def history_bundle(entries: list[dict[str, Any]], next_url: str | None = None) -> dict[str, Any]:
    links = [{"relation": "next", "url": next_url}] if next_url else []
    return {"resourceType": "Bundle", "type": "history", "link": links, "entry": entries}


@respx.mock
async def test_a_history_page_reads_deletions_with_or_without_a_method() -> None:
    from connectors.rest.http import FhirHttp, HttpPolicy

    base = "https://hist.example/fhir"
    respx.get(f"{base}/Encounter/_history").mock(
        side_effect=[
            httpx.Response(
                200,
                json=history_bundle(
                    [
                        {
                            "fullUrl": f"{base}/Encounter/e1",
                            "request": {"method": "DELETE", "url": "Encounter/e1"},
                            "response": {
                                "status": "204",
                                "etag": 'W/"3"',
                                "lastModified": "2026-01-02T03:04:05.250Z",
                            },
                        },
                        {
                            "resource": {"resourceType": "Encounter", "id": "e2"},
                            "request": {"method": "PUT", "url": "Encounter/e2"},
                        },
                    ],
                    f"{base}/Encounter/_history?page=2",
                ),
            ),
            httpx.Response(
                200,
                json=history_bundle(
                    [
                        {"fullUrl": f"{base}/Encounter/e3/_history/7"},
                        {"request": {"method": "DELETE", "url": "Patient/p1"}},
                    ]
                ),
            ),
        ]
    )
    async with httpx.AsyncClient() as client:
        pages = [
            page async for page in history(FhirHttp(client, HttpPolicy()), base, "Encounter", {})
        ]
    assert [[(i, d.resource_id, d.version_id, d.when) for i, d in p.deleted] for p in pages] == [
        [(0, "e1", "3", "2026-01-02T03:04:05.250Z")],
        [(0, "e3", "7", None)],
    ]
    assert [[r["id"] for _, r in p.resources] for p in pages] == [["e2"], []]
    assert [p.broken for p in pages] == [
        [],
        [(1, "a DELETE entry that names no resource of this type")],
    ]
