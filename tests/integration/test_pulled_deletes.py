"""Deletions seen in pulls: a REST source's type history (sekmet-fhir, a real server
that serves `_history` with DELETE entries), Bulk exports' deleted files and the
reconciliation listing (respx, for what sekmet will not produce)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest
import respx
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from connectors.rest.search import history
from integration.api.app import create_app
from integration.config import Settings
from integration.sources import SourceConfig
from integration.store import queries
from integration.store.sync_state import load_checkpoint
from integration.sync.bulk import EXPORT_STATE
from integration.sync.runners import sync_source
from mappings.rulepack import RulePack
from tests.conftest import encounter, patient
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
    # Its history shows deletions: no reconciliation listing, even when configured.
    config = rest_source(sekmet.base_url, reconcile_every_days=0)
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
    assert not any(t.reconciled for t in (*first.types.values(), *second.types.values()))

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


# ---- Bulk: a `_since` export's deleted files (sekmet writes none: respx) ----

BULK = "https://bulk.example/fhir"
STATUS = "https://bulk.example/status/1"
FILES = "https://files.example"


def bulk_source() -> SourceConfig:
    return SourceConfig.model_validate(
        {
            "name": "plan-bulk",
            "kind": "payer",
            "base_url": BULK,
            "mode": "bulk",
            "max_attempts": 2,
            "resource_types": ["Patient", "Encounter"],
        }
    )


def ndjson(*resources: dict[str, Any]) -> bytes:
    return b"".join(orjson.dumps(r) + b"\n" for r in resources)


def deletions(*names: str, **response: str) -> dict[str, Any]:
    entries: list[dict[str, Any]] = [
        {"request": {"method": "DELETE", "url": name}} for name in names
    ]
    if response:
        entries[0]["response"] = response
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def bulk_manifest(time: str, output: list[str], deleted: list[str]) -> dict[str, Any]:
    return {
        "transactionTime": time,
        "request": f"{BULK}/$export",
        "requiresAccessToken": True,
        "output": [{"type": n.split(".")[0].title(), "url": f"{FILES}/{n}"} for n in output],
        "deleted": [{"type": "Bundle", "url": f"{FILES}/{n}"} for n in deleted],
        "error": [],
    }


@pytest.fixture
def bulk_server() -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_called=False) as router:
        router.get(f"{BULK}/$export").mock(
            return_value=httpx.Response(202, headers={"Content-Location": STATUS})
        )
        router.delete(STATUS).mock(return_value=httpx.Response(202))
        router.get(f"{FILES}/patient.ndjson").mock(
            return_value=httpx.Response(
                200, content=ndjson(dated(patient("bp1"), "2026-10-01T00:00:00Z"))
            )
        )
        router.get(f"{FILES}/encounter.ndjson").mock(
            return_value=httpx.Response(
                200,
                content=ndjson(
                    dated(encounter("be1", "bp1", "EMER"), "2026-10-01T00:00:00Z"),
                    dated(
                        encounter("be2", "bp1", "EMER", "2025-04-01T10:00:00Z"),
                        "2026-10-01T00:00:00Z",
                    ),
                ),
            )
        )
        yield router


def dated(resource: dict[str, Any], when: str) -> dict[str, Any]:
    return {**resource, "meta": {"lastUpdated": when}}


def records(engine: Engine) -> dict[str, dict[str, Any]]:
    """Every job record of every person, by its source resource id, excluded ones too."""
    with engine.connect() as conn:
        people = queries.list_people(conn, 100)
        return {
            r["source"]["resource_id"]: r
            for p in people
            for r in queries.journey(
                conn, p["id"], 100, where=queries.JourneyFilter(include_excluded=True)
            )
        }


async def test_a_since_exports_deleted_file_takes_records_out_of_the_journey(
    bulk_server: respx.MockRouter, engine: Engine, pack: RulePack
) -> None:
    first_time, second_time = "2026-11-01T00:00:00Z", "2026-11-02T00:00:00Z"
    bulk_server.get(STATUS).mock(
        side_effect=[
            httpx.Response(
                200, json=bulk_manifest(first_time, ["patient.ndjson", "encounter.ndjson"], [])
            ),
            httpx.Response(200, json=bulk_manifest(second_time, [], ["deleted.ndjson"])),
        ]
    )
    bulk_server.get(f"{FILES}/deleted.ndjson").mock(
        return_value=httpx.Response(
            200,
            content=ndjson(
                deletions("Encounter/be1", "Observation/o1"),
                deletions("Encounter/never-held"),
            ),
        )
    )
    first = await sync_source(engine, pack, Settings(), bulk_source())
    assert not first.failed, (first.error, first.types)
    before = records(engine)
    assert not before["be1"]["excluded"]
    assert not before["be2"]["excluded"]

    second = await sync_source(engine, pack, Settings(), bulk_source())
    assert not second.failed, (second.error, second.types, second.notes)
    kick_offs = bulk_server.routes[0].calls
    assert f"_since={first_time}".replace(":", "%3A") in str(kick_offs[1].request.url)
    assert second.types["Encounter"].deleted == 2  # be1, and never-held remembered
    assert "Observation" not in second.types  # not a type this source syncs
    after = records(engine)
    assert after["be1"]["excluded"]
    assert after["be1"]["removed_reason"] == "deleted by source"
    assert not after["be2"]["excluded"]
    with engine.connect() as conn:
        assert load_checkpoint(conn, "plan-bulk", EXPORT_STATE) == second_time


async def test_a_deleted_file_that_cannot_be_read_deletes_nothing_and_keeps_the_checkpoint(
    bulk_server: respx.MockRouter, engine: Engine, pack: RulePack
) -> None:
    first_time = "2026-11-01T00:00:00Z"
    bulk_server.get(STATUS).mock(
        side_effect=[
            httpx.Response(
                200, json=bulk_manifest(first_time, ["patient.ndjson", "encounter.ndjson"], [])
            ),
            httpx.Response(200, json=bulk_manifest("2026-11-02T00:00:00Z", [], ["gone.ndjson"])),
        ]
    )
    bulk_server.get(f"{FILES}/gone.ndjson").mock(return_value=httpx.Response(404))
    assert not (await sync_source(engine, pack, Settings(), bulk_source())).failed
    second = await sync_source(engine, pack, Settings(), bulk_source())
    assert second.failed
    assert "gone.ndjson" in (second.types["Encounter"].error or "")
    assert not any(r["excluded"] for r in records(engine).values())
    with engine.connect() as conn:
        assert load_checkpoint(conn, "plan-bulk", EXPORT_STATE) == first_time


# ---- Reconciliation for a server without history (respx) ----

PLAIN = "https://plain.example/fhir"
NO_HISTORY = {
    "resourceType": "CapabilityStatement",
    "fhirVersion": "4.0.1",
    "rest": [
        {
            "mode": "server",
            "resource": [{"type": "Patient", "interaction": [{"code": "search-type"}]}],
        }
    ],
}


def searchset(
    resources: list[dict[str, Any]], next_url: str | None = None, total: int | None = None
) -> dict[str, Any]:
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [{"resource": r, "search": {"mode": "match"}} for r in resources],
        "link": [{"relation": "next", "url": next_url}] if next_url else [],
    }
    if total is not None:
        bundle["total"] = total
    return bundle


def plain_server(
    router: respx.MockRouter, held: list[str], listings: list[httpx.Response]
) -> list[httpx.Request]:
    """A server without history: searches answer `held` (one page); `_elements=id`
    listings answer `listings` in turn; returns the listing requests seen."""
    seen: list[httpx.Request] = []
    answers = iter(listings)

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.params.get("_elements") == "id" or "page=" in str(request.url):
            seen.append(request)
            return next(answers)
        return httpx.Response(200, json=searchset([patient(pid) for pid in held]))

    router.get(f"{PLAIN}/metadata").mock(return_value=httpx.Response(200, json=NO_HISTORY))
    router.get(f"{PLAIN}/Patient").mock(side_effect=answer)
    return seen


def ids(*names: str) -> list[dict[str, Any]]:
    return [{"resourceType": "Patient", "id": name} for name in names]


def reconciling(**extra: Any) -> SourceConfig:
    return SourceConfig.model_validate(
        {
            "name": "plain",
            "kind": "provider",
            "base_url": PLAIN,
            "mode": "rest",
            "max_attempts": 1,
            "resource_types": ["Patient"],
            "reconcile_every_days": 0,
            **extra,
        }
    )


def live(engine: Engine) -> set[str]:
    from integration.store.raw import live_ids

    with engine.connect() as conn:
        return live_ids(conn, "plain", "Patient")


async def test_reconciliation_deletes_what_a_whole_listing_lacks(
    engine: Engine, pack: RulePack
) -> None:
    with respx.mock(assert_all_called=False) as router:
        plain_server(
            router,
            ["r1", "r2", "r3"],
            [
                httpx.Response(200, json=searchset(ids("r1", "r2", "r3"), total=3)),
                # Paged: r2 is gone from the server.
                httpx.Response(200, json=searchset(ids("r1"), f"{PLAIN}/Patient?page=2", 2)),
                httpx.Response(200, json=searchset(ids("r3"), total=2)),
            ],
        )
        first = await sync_source(engine, pack, Settings(), reconciling())
        assert not first.failed, first.types
        assert first.types["Patient"].reconciled
        assert first.types["Patient"].deleted == 0
        assert live(engine) == {"r1", "r2", "r3"}
        with engine.connect() as conn:
            people_before = len(queries.list_people(conn, 100))

        second = await sync_source(engine, pack, Settings(), reconciling())
    assert not second.failed, second.types
    assert second.types["Patient"].reconciled
    assert second.types["Patient"].deleted == 1
    assert live(engine) == {"r1", "r3"}
    with engine.connect() as conn:
        # r2's person had no other Patient: retired, out of the people list.
        assert len(queries.list_people(conn, 100)) == people_before - 1
        assert load_checkpoint(conn, "plain", "$reconciled:Patient") is not None


async def test_a_roster_sync_is_reconciled_too(engine: Engine, pack: RulePack) -> None:
    """A payer syncing its members from a server without history still learns that a
    member's resource was deleted: the listing is of the whole type, so whatever is held
    and not listed is gone, members or not."""
    with respx.mock(assert_all_called=False) as router:
        plain_server(
            router,
            ["r1", "r2", "r3"],
            [
                httpx.Response(200, json=searchset(ids("r1", "r2", "r3", "x9"), total=4)),
                httpx.Response(200, json=searchset(ids("r1", "r3", "x9"), total=3)),
            ],
        )
        group = {
            "resourceType": "Group",
            "id": "members",
            "type": "person",
            "actual": True,
            "member": [{"entity": {"reference": f"Patient/r{n}"}} for n in (1, 2, 3)],
        }
        router.get(f"{PLAIN}/Group/members").mock(return_value=httpx.Response(200, json=group))
        roster = reconciling(members={"group": "Group/members"})
        first = await sync_source(engine, pack, Settings(), roster)
        assert not first.failed, first.types
        assert live(engine) == {"r1", "r2", "r3"}
        second = await sync_source(engine, pack, Settings(), roster)
    assert not second.failed, second.types
    assert second.types["Patient"].reconciled
    assert second.types["Patient"].deleted == 1
    assert live(engine) == {"r1", "r3"}


@pytest.mark.parametrize(
    "second_page",
    [
        httpx.Response(500, json={"resourceType": "OperationOutcome", "issue": []}),
        httpx.Response(200, json={"resourceType": "OperationOutcome", "issue": []}),
        httpx.Response(200, json=searchset([{"resourceType": "Patient"}])),
    ],
    ids=["fails-halfway", "not-a-bundle", "entry-without-id"],
)
async def test_a_listing_that_fails_halfway_deletes_nothing(
    engine: Engine, pack: RulePack, second_page: httpx.Response
) -> None:
    with respx.mock(assert_all_called=False) as router:
        listings = plain_server(
            router,
            ["r1", "r2", "r3"],
            [
                httpx.Response(200, json=searchset(ids("r1", "r2", "r3"))),
                httpx.Response(200, json=searchset(ids("r1"), f"{PLAIN}/Patient?page=2")),
                second_page,
            ],
        )
        assert not (await sync_source(engine, pack, Settings(), reconciling())).failed
        second = await sync_source(engine, pack, Settings(), reconciling())
    assert len(listings) == 3  # the second listing was tried, and broke on its page 2
    assert not second.failed, second.types  # the sync itself went fine
    assert not second.types["Patient"].reconciled
    assert second.types["Patient"].deleted == 0
    assert any("nothing deleted" in w for w in second.types["Patient"].warnings)
    assert live(engine) == {"r1", "r2", "r3"}


async def test_a_listing_short_of_the_servers_total_or_empty_deletes_nothing(
    engine: Engine, pack: RulePack
) -> None:
    with respx.mock(assert_all_called=False) as router:
        plain_server(
            router,
            ["r1", "r2"],
            [
                httpx.Response(200, json=searchset(ids("r1", "r2"))),
                httpx.Response(200, json=searchset(ids("r1"), total=2)),  # cut short
                httpx.Response(200, json=searchset([])),  # nothing at all
            ],
        )
        for _ in range(3):
            summary = await sync_source(engine, pack, Settings(), reconciling())
            assert summary.types["Patient"].deleted == 0
    assert live(engine) == {"r1", "r2"}


async def test_reconciliation_waits_for_its_interval(engine: Engine, pack: RulePack) -> None:
    with respx.mock(assert_all_called=False) as router:
        listings = plain_server(router, ["r1"], [httpx.Response(200, json=searchset(ids("r1")))])
        for _ in range(2):
            summary = await sync_source(
                engine, pack, Settings(), reconciling(reconcile_every_days=7)
            )
            assert not summary.failed, summary.types
    assert len(listings) == 1  # the second sync was within the week


def test_the_sync_summary_says_what_the_source_deleted(capsys: pytest.CaptureFixture[str]) -> None:
    from integration.cli.sync_view import print_sync_summary
    from integration.sync.summary import SyncSummary, TypeSync

    summary = SyncSummary("ehr")
    summary.types["Encounter"] = TypeSync("Encounter", full=False, history=True, deleted=2)
    summary.types["Patient"] = TypeSync("Patient", reconciled=True)
    print_sync_summary(summary)
    out = capsys.readouterr().out
    assert "Encounter: 2 deleted by the source (read from its history)" in out
    assert "Patient: 0 deleted by the source (reconciled)" in out


# ---- History faults (respx) ----

HIST = "https://hist.example/fhir"
WITH_HISTORY = {
    "resourceType": "CapabilityStatement",
    "fhirVersion": "4.0.1",
    "rest": [
        {
            "mode": "server",
            "resource": [
                {
                    "type": "Patient",
                    "interaction": [{"code": "search-type"}, {"code": "history-type"}],
                    "searchParam": [{"name": "_lastUpdated", "type": "date"}],
                }
            ],
        }
    ],
}


def history_source() -> SourceConfig:
    return SourceConfig.model_validate(
        {
            "name": "hist",
            "kind": "provider",
            "base_url": HIST,
            "mode": "rest",
            "max_attempts": 1,
            "overlap_seconds": 0,
            "resource_types": ["Patient"],
        }
    )


async def test_history_failing_on_a_later_page_keeps_the_checkpoint(
    engine: Engine, pack: RulePack
) -> None:
    """History is newest first: page 1 alone must not move the checkpoint past page 2."""
    from integration.store.sync_state import save_checkpoint

    with engine.begin() as conn:
        save_checkpoint(conn, "hist", "Patient", "2026-01-01T00:00:00Z")
    newest = dated(patient("h2"), "2026-03-01T00:00:00Z")
    with respx.mock(assert_all_called=False) as router:
        router.get(f"{HIST}/metadata").mock(return_value=httpx.Response(200, json=WITH_HISTORY))
        walk = router.get(f"{HIST}/Patient/_history").mock(
            side_effect=[
                httpx.Response(
                    200,
                    json=history_bundle(
                        [{"resource": newest, "request": {"method": "PUT", "url": "Patient/h2"}}],
                        f"{HIST}/Patient/_history?page=2",
                    ),
                ),
                httpx.Response(503),
            ]
        )
        summary = await sync_source(engine, pack, Settings(), history_source())
    assert walk.calls[0].request.url.params["_since"] == "2026-01-01T00:00:00Z"
    assert summary.types["Patient"].error is not None
    with engine.connect() as conn:
        assert load_checkpoint(conn, "hist", "Patient") == "2026-01-01T00:00:00Z"


async def test_a_server_refusing_its_declared_history_is_searched_instead(
    engine: Engine, pack: RulePack
) -> None:
    from integration.store.sync_state import save_checkpoint

    with engine.begin() as conn:
        save_checkpoint(conn, "hist", "Patient", "2026-01-01T00:00:00Z")
    with respx.mock(assert_all_called=False) as router:
        router.get(f"{HIST}/metadata").mock(return_value=httpx.Response(200, json=WITH_HISTORY))
        router.get(f"{HIST}/Patient/_history").mock(return_value=httpx.Response(400))
        search = router.get(f"{HIST}/Patient").mock(
            return_value=httpx.Response(
                200, json=searchset([dated(patient("h1"), "2026-02-01T00:00:00Z")])
            )
        )
        summary = await sync_source(engine, pack, Settings(), history_source())
    assert not summary.failed, summary.types
    assert not summary.types["Patient"].history
    assert search.calls[0].request.url.params["_lastUpdated"] == "gt2026-01-01T00:00:00Z"
    assert any("refused" in w for w in summary.types["Patient"].warnings)
    with engine.connect() as conn:
        assert load_checkpoint(conn, "hist", "Patient") == "2026-02-01T00:00:00Z"
