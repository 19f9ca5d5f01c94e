"""`journey sync` against a real third-party FHIR server (sekmet-fhir on loopback),
and against respx for the faults a real server will not produce on demand."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from sqlalchemy import Engine, select, update

from bench.latency_peer import Peer, build
from integration.clock import utc_now
from integration.config import Settings
from integration.sources import SourceConfig
from integration.store import queries
from integration.store.leases import claim_unit
from integration.store.quarantine import entries as quarantine_entries
from integration.store.schema import roster_members, sync_units
from integration.store.sync_state import load_checkpoint, save_checkpoint, states
from integration.sync.context import SyncListener
from integration.sync.rest import RestSync
from integration.sync.runners import sync_source
from mappings.rulepack import RulePack
from tests.servers import Sekmet, seeded_sekmet


@pytest.fixture(scope="module")
def sekmet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sekmet]:
    yield from seeded_sekmet(tmp_path_factory.mktemp("sekmet"), 12)


@pytest.fixture(scope="module")
def smart_key(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    folder = tmp_path_factory.mktemp("keys")
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    (folder / "private.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    (folder / "public.pem").write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return folder / "private.pem"


@pytest.fixture(scope="module")
def secured_sekmet(sekmet: Sekmet, smart_key: Path) -> Iterator[Sekmet]:
    """A second sekmet on the same data that only admits SMART Backend Services clients."""
    config = sekmet.folder / "secured.yaml"
    config.write_text(
        "server_auth:\n"
        "  types: [smart]\n"
        "  smart_clients:\n"
        "    - client_id: journey-smart\n"
        f"      public_key_path: {smart_key.parent / 'public.pem'}\n"
        "      scopes: system/*.read\n"
        "    - client_id: journey-secret\n"
        "      client_secret: s3cret\n"
        "      scopes: system/*.read\n"
    )
    server = Sekmet(sekmet.folder, sekmet.folder / "sekmet.db", config)
    try:
        server.start()
        yield server
    finally:
        server.stop()


def source(base_url: str, **extra: Any) -> SourceConfig:
    return SourceConfig.model_validate(
        {"name": "ehr", "kind": "provider", "base_url": base_url, "mode": "rest", **extra}
    )


async def run(engine: Engine, pack: RulePack, config: SourceConfig, full: bool = False) -> Any:
    return await sync_source(engine, pack, Settings(), config, full=full)


@pytest.mark.slow
async def test_full_then_incremental_sync_from_a_real_server(
    sekmet: Sekmet, engine: Engine, pack: RulePack
) -> None:
    config = source(
        sekmet.base_url, page_size=5, overlap_seconds=0, resource_types=["Patient", "Encounter"]
    )
    first = await run(engine, pack, config)
    assert not first.failed, first.types
    patients = first.stored.by_type["Patient"]
    assert patients.new >= 12
    assert first.types["Patient"].pages >= 3  # paged with next links, 5 a page
    assert first.types["Patient"].full
    with engine.connect() as conn:
        checkpoint = load_checkpoint(conn, "ehr", "Patient")
        people = queries.list_people(conn, 100)
        records = [r for p in people for r in queries.journey(conn, p["id"], 100)]
    assert checkpoint is not None
    assert len(people) == patients.new
    assert records
    assert {r["source"]["source"] for r in records} == {"ehr"}

    second = await run(engine, pack, config)
    assert not second.types["Patient"].full
    assert second.stored.by_type["Patient"].new == 0

    # No overlap window, and the new patients may land in the very second of the
    # checkpoint: sekmet-fhir keeps milliseconds, and so does the checkpoint.
    sekmet.seed(3)
    third = await run(engine, pack, config)
    assert third.stored.by_type["Patient"].new == 3
    assert third.types["Patient"].fetched < patients.new  # only what changed, not everything again


@pytest.mark.slow
async def test_the_journey_fills_while_a_long_sync_is_still_pulling(
    sekmet: Sekmet, engine: Engine, pack: RulePack
) -> None:
    people_seen_after_page: list[int] = []

    def count_people(_source: str, _type: str, _page: Any) -> None:
        with engine.connect() as conn:
            people_seen_after_page.append(len(queries.list_people(conn, 1000)))

    # Enough pages that rounds of 10 fall between them, whichever tests ran before.
    sekmet.seed(20)
    config = source(sekmet.base_url, page_size=5, resource_types=["Patient"])
    # In this process: a derive process would take longer to start than this pull lasts.
    settings = Settings(batch_size=10, derive_process=False)
    summary = await sync_source(
        engine, pack, settings, config, listener=SyncListener(on_page=count_people)
    )
    assert not summary.failed, summary.types
    patients = summary.stored.by_type["Patient"].new
    assert summary.types["Patient"].pages >= 3
    # People showed up while pages were still arriving, not only at the end...
    assert any(0 < seen < patients for seen in people_seen_after_page), people_seen_after_page
    # ...and after the final round every Patient is someone's journey, mapped once.
    with engine.connect() as conn:
        assert len(queries.list_people(conn, 1000)) == patients
    assert summary.derive.resources == patients


@pytest.mark.slow
@pytest.mark.parametrize(
    "auth",
    [
        {"type": "smart-backend", "client_id": "journey-smart", "algorithm": "RS384"},
        {
            "type": "client_credentials",
            "client_id": "journey-secret",
            "client_secret_env": "SEKMET_SECRET",
        },
    ],
    ids=["smart-backend-services", "client-credentials"],
)
async def test_sync_authenticates_against_a_real_smart_server(
    secured_sekmet: Sekmet,
    smart_key: Path,
    engine: Engine,
    pack: RulePack,
    auth: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SEKMET_SECRET", "s3cret")
    if auth["type"] == "smart-backend":
        auth = {**auth, "private_key_file": str(smart_key)}
    unauthenticated = httpx.get(f"{secured_sekmet.base_url}/Patient", timeout=5)
    assert unauthenticated.status_code == 401
    config = source(secured_sekmet.base_url, resource_types=["Patient"], auth=auth)
    summary = await run(engine, pack, config)
    assert summary.types["Patient"].error is None
    assert summary.stored.by_type["Patient"].new >= 12


@pytest.mark.slow
async def test_a_wrong_client_secret_is_one_clear_error(
    secured_sekmet: Sekmet, engine: Engine, pack: RulePack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SEKMET_SECRET", "wrong")
    auth = {
        "type": "client_credentials",
        "client_id": "journey-secret",
        "client_secret_env": "SEKMET_SECRET",
    }
    summary = await run(
        engine, pack, source(secured_sekmet.base_url, resource_types=["Patient"], auth=auth)
    )
    assert summary.error is not None
    assert "no access token" in summary.error
    assert summary.retries == 0


BASE = "https://ehr.example/fhir"
NO_SORT = {
    "resourceType": "OperationOutcome",
    "issue": [
        {"severity": "error", "code": "not-supported", "diagnostics": "_sort is not supported"}
    ],
}
METADATA = {
    "resourceType": "CapabilityStatement",
    "fhirVersion": "4.0.1",
    "rest": [
        {
            "mode": "server",
            "resource": [
                {
                    "type": t,
                    "interaction": [{"code": "search-type"}],
                    "searchParam": [{"name": "_lastUpdated"}],
                }
                for t in ("Patient", "Encounter")
            ],
        }
    ],
}


def searchset(entries: list[dict[str, Any]], total: int | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset", "entry": entries}
    if total is not None:
        body["total"] = total
    return body


def patient_entry(pid: str, updated: str) -> dict[str, Any]:
    return {"resource": {"resourceType": "Patient", "id": pid, "meta": {"lastUpdated": updated}}}


@pytest.fixture
def router() -> Iterator[respx.MockRouter]:
    # Not every test reaches every route here (the _sort probe only comes for _lastUpdated
    # searches), so tests assert the routes they care about themselves.
    with respx.mock(assert_all_called=False) as mock:
        mock.get(f"{BASE}/metadata").mock(return_value=httpx.Response(200, json=METADATA))
        # This server cannot sort: syncs walk its next links one by one.
        mock.get(url__regex=r"[?&]_sort=").mock(return_value=httpx.Response(400, json=NO_SORT))
        yield mock


async def test_checkpoint_never_passes_data_not_stored(
    router: respx.MockRouter, engine: Engine, pack: RulePack
) -> None:
    page1 = {
        "resourceType": "Bundle",
        "type": "searchset",
        "link": [{"relation": "next", "url": f"{BASE}/Patient?page=2"}],
        "entry": [
            patient_entry("a", "2025-01-01T10:00:00Z"),
            patient_entry("b", "2025-01-02T10:00:00Z"),
        ],
    }
    router.get(f"{BASE}/Patient", params={"_count": "100"}).mock(
        return_value=httpx.Response(200, json=page1)
    )
    router.get(f"{BASE}/Patient", params={"page": "2"}).mock(
        side_effect=httpx.ConnectError("reset")
    )
    config = source(BASE, resource_types=["Patient"], max_attempts=2)
    summary = await run(engine, pack, config)
    assert summary.failed
    assert "ConnectError" in summary.types["Patient"].error
    assert summary.retries == 1  # bounded: two attempts, then reported
    assert summary.stored.by_type["Patient"].new == 2
    with engine.connect() as conn:
        assert load_checkpoint(conn, "ehr", "Patient") == "2025-01-02T10:00:00Z"
        [state] = states(conn)
    assert state["last_error"]
    assert "ConnectError" in state["last_error"]


async def test_a_failing_type_does_not_stop_the_others(
    router: respx.MockRouter, engine: Engine, pack: RulePack
) -> None:
    outcome = {
        "resourceType": "OperationOutcome",
        "issue": [
            {"severity": "error", "code": "forbidden", "diagnostics": "no access to Encounter"}
        ],
    }
    router.get(f"{BASE}/Encounter").mock(return_value=httpx.Response(403, json=outcome))
    router.get(f"{BASE}/Patient").mock(
        return_value=httpx.Response(
            200,
            json=searchset([patient_entry("a", "2025-01-01T00:00:00Z")]),
        )
    )
    summary = await run(engine, pack, source(BASE, resource_types=["Patient", "Encounter"]))
    assert summary.types["Patient"].error is None
    assert summary.stored.by_type["Patient"].new == 1
    assert "HTTP 403: no access to Encounter" in summary.types["Encounter"].error


async def test_broken_entries_are_quarantined_and_good_ones_kept(
    router: respx.MockRouter, engine: Engine, pack: RulePack
) -> None:
    bad = {"resource": {"resourceType": "Patient", "id": "bad", "birthDate": "1970-13-01"}}
    router.get(f"{BASE}/Patient").mock(
        return_value=httpx.Response(
            200,
            json=searchset(
                [
                    patient_entry("a", "2025-01-01T00:00:00Z"),
                    bad,
                    {"search": {"mode": "match"}},
                ]
            ),
        )
    )
    summary = await run(engine, pack, source(BASE, resource_types=["Patient"]))
    counts = summary.stored.by_type
    assert counts["Patient"].new == 1
    assert counts["Patient"].quarantined + counts["(unreadable)"].quarantined == 2
    with engine.connect() as conn:
        entries = quarantine_entries(conn, 10)
    assert {e["location"] for e in entries} == {"page 1, entry 1", "page 1, entry 2"}
    assert all(e["origin"].startswith(f"{BASE}/Patient") for e in entries)


async def test_unreadable_capability_statement_is_reported(engine: Engine, pack: RulePack) -> None:
    with respx.mock() as mock:
        mock.get(f"{BASE}/metadata").mock(return_value=httpx.Response(200, text="not json"))
        summary = await run(engine, pack, source(BASE))
    assert summary.error
    assert "CapabilityStatement" in summary.error
    with engine.connect() as conn:
        assert {s["resource_type"] for s in states(conn)} == {
            "Patient",
            "Encounter",
            "QuestionnaireResponse",
        }


def test_api_lists_sources_and_runs_a_sync_in_the_background(
    router: respx.MockRouter, engine: Engine
) -> None:
    from fastapi.testclient import TestClient

    from integration.api.app import create_app

    router.get(f"{BASE}/Patient").mock(
        return_value=httpx.Response(
            200,
            json=searchset([patient_entry("a", "2025-01-01T00:00:00Z")]),
        )
    )
    configured = {
        "name": "ehr",
        "kind": "payer",
        "base_url": BASE,
        "mode": "rest",
        "resource_types": ["Patient"],
    }
    settings = Settings(api_keys=["k"], sources=[configured])
    auth = {"Authorization": "Bearer k"}
    with TestClient(create_app(settings, engine)) as client:
        [before] = client.get("/sources", headers=auth).json()["items"]
        assert (before["name"], before["kind"], before["resource_types"]) == ("ehr", "payer", [])
        started = client.post("/sources/ehr/sync", headers=auth)
        assert started.status_code == 202
        assert started.headers["location"] == "/sources"
        deadline = time.monotonic() + 20
        while True:
            [item] = client.get("/sources", headers=auth).json()["items"]
            if item["running_since"] is None and item["resource_types"]:
                break
            assert time.monotonic() < deadline, "background sync did not finish"
            time.sleep(0.05)
        [patient_state] = item["resource_types"]
        assert patient_state["last_counts"]["new"] == 1
        assert patient_state["checkpoint"] == "2025-01-01T00:00:00Z"
        assert client.post("/sources/nope/sync", headers=auth).status_code == 404
        with engine.begin() as conn:  # a worker elsewhere holds the source's unit
            assert claim_unit(conn, "worker@elsewhere", utc_now(), 60, ["ehr"]) is None
            conn.execute(update(sync_units).values(next_run_at=utc_now()))
            assert claim_unit(conn, "worker@elsewhere", utc_now(), 60, ["ehr"]) is not None
        busy = client.post("/sources/ehr/sync", headers=auth)
        assert busy.status_code == 409
        assert "Patient is held by worker@elsewhere" in busy.json()["detail"]
        assert client.post("/sources/ehr/sync").status_code == 401


async def test_a_final_last_updated_pass_catches_what_moved_during_an_offset_walk(
    router: respx.MockRouter, engine: Engine, pack: RulePack
) -> None:
    def page(entries: list[dict[str, Any]], next_url: str | None) -> dict[str, Any]:
        links = [{"relation": "next", "url": next_url}] if next_url else []
        return {
            "resourceType": "Bundle",
            "type": "searchset",
            "meta": {"lastUpdated": "2025-06-01T12:00:00Z"},
            "link": links,
            "entry": entries,
        }

    # More specific routes first: respx matches params by containment.
    catch_up = router.get(
        f"{BASE}/Patient", params={"_count": "100", "_lastUpdated": "gt2025-06-01T11:59:59Z"}
    ).mock(
        return_value=httpx.Response(
            200, json=page([patient_entry("moved", "2025-06-01T12:00:05Z")], None)
        )
    )
    router.get(f"{BASE}/Patient", params={"_count": "100"}).mock(
        return_value=httpx.Response(
            200,
            json=page([patient_entry("a", "2025-01-01T00:00:00Z")], f"{BASE}/Patient?_offset=1"),
        )
    )
    # While we walked, "moved" was updated and slid onto a page we had already read.
    router.get(f"{BASE}/Patient", params={"_offset": "1"}).mock(
        return_value=httpx.Response(
            200, json=page([patient_entry("c", "2025-01-03T00:00:00Z")], None)
        )
    )
    summary = await run(engine, pack, source(BASE, resource_types=["Patient"]))
    assert catch_up.called
    assert summary.types["Patient"].catch_up_pass
    assert summary.stored.by_type["Patient"].new == 3
    with engine.connect() as conn:
        assert load_checkpoint(conn, "ehr", "Patient") == "2025-06-01T12:00:05Z"


async def test_incremental_sync_asks_by_the_servers_clock_not_ours(
    router: respx.MockRouter, engine: Engine, pack: RulePack
) -> None:
    # The server's clock runs years ahead of ours: its timestamps are the checkpoint.
    # More specific route first: respx matches params by containment.
    again = router.get(
        f"{BASE}/Patient", params={"_count": "100", "_lastUpdated": "gt2031-01-01T00:00:00Z"}
    ).mock(return_value=httpx.Response(200, json={"resourceType": "Bundle", "type": "searchset"}))
    ahead = searchset([patient_entry("a", "2031-01-01T00:10:00Z")])
    router.get(f"{BASE}/Patient", params={"_count": "100"}).mock(
        return_value=httpx.Response(200, json=ahead)
    )
    await run(engine, pack, source(BASE, resource_types=["Patient"], overlap_seconds=600))
    summary = await run(engine, pack, source(BASE, resource_types=["Patient"], overlap_seconds=600))
    assert again.called
    assert not summary.types["Patient"].full


async def test_checkpoints_keep_the_servers_milliseconds_so_no_overlap_loses_nothing(
    router: respx.MockRouter, engine: Engine, pack: RulePack
) -> None:
    # A server reads gt<second> as after that whole second: a checkpoint cut to the
    # second would skip whatever changed later in that second.
    again = router.get(
        f"{BASE}/Patient", params={"_count": "100", "_lastUpdated": "gt2025-06-01T12:00:05.250Z"}
    ).mock(
        return_value=httpx.Response(
            200,
            json=searchset([patient_entry("b", "2025-06-01T14:00:05.9+02:00")]),
        )
    )
    router.get(f"{BASE}/Patient", params={"_count": "100"}).mock(
        return_value=httpx.Response(
            200,
            json=searchset(
                [
                    patient_entry("a", "2025-06-01T12:00:05.250Z"),
                    patient_entry("old", "2025-06-01T12:00:04Z"),
                ]
            ),
        )
    )
    config = source(BASE, resource_types=["Patient"], overlap_seconds=0)
    await run(engine, pack, config)
    with engine.connect() as conn:
        assert load_checkpoint(conn, "ehr", "Patient") == "2025-06-01T12:00:05.250Z"
    second = await run(engine, pack, config)
    assert again.called
    assert second.stored.by_type["Patient"].new == 1
    with engine.connect() as conn:
        # Later than .250 in the same second, given with an offset: read as UTC.
        assert load_checkpoint(conn, "ehr", "Patient") == "2025-06-01T12:00:05.900Z"


async def test_a_full_pull_never_moves_the_checkpoint_backwards(
    router: respx.MockRouter, engine: Engine, pack: RulePack
) -> None:
    # An incremental sync got to 2025-06-02; a full pull re-walks from the oldest data,
    # whose newest resource here is older: the next incremental sync must still ask
    # from 2025-06-02, not fetch a day again.
    with engine.begin() as conn:
        save_checkpoint(conn, "ehr", "Patient", "2025-06-02T00:00:00.000Z")
    router.get(f"{BASE}/Patient", params={"_count": "100"}).mock(
        return_value=httpx.Response(
            200, json=searchset([patient_entry("a", "2025-06-01T12:00:05.100Z")])
        )
    )
    summary = await run(
        engine, pack, source(BASE, resource_types=["Patient"], concurrency=1), full=True
    )
    assert summary.stored.by_type["Patient"].new == 1
    with engine.connect() as conn:
        assert load_checkpoint(conn, "ehr", "Patient") == "2025-06-02T00:00:00.000Z"


async def test_a_checkpoint_kept_to_the_second_compares_with_milliseconds(
    router: respx.MockRouter, engine: Engine, pack: RulePack
) -> None:
    # Stores synced before checkpoints kept milliseconds hold "...:05Z". As strings,
    # "...:05Z" sorts after "...:05.100Z"; as instants it is earlier.
    with engine.begin() as conn:
        save_checkpoint(conn, "ehr", "Patient", "2025-06-01T12:00:05Z")
    router.get(
        f"{BASE}/Patient", params={"_count": "100", "_lastUpdated": "gt2025-06-01T12:00:05Z"}
    ).mock(
        return_value=httpx.Response(
            200,
            json=searchset([patient_entry("a", "2025-06-01T12:00:05.100Z")]),
        )
    )
    await run(engine, pack, source(BASE, resource_types=["Patient"], overlap_seconds=0))
    with engine.connect() as conn:
        assert load_checkpoint(conn, "ehr", "Patient") == "2025-06-01T12:00:05.100Z"


@pytest.mark.slow
async def test_payer_pulls_only_its_members_from_a_group_roster(
    sekmet: Sekmet, engine: Engine, pack: RulePack
) -> None:
    everyone = httpx.get(f"{sekmet.base_url}/Patient", params={"_count": "200"}, timeout=10).json()
    ids = sorted(entry["resource"]["id"] for entry in everyone["entry"])
    members = ids[:3]
    group = {
        "resourceType": "Group",
        "type": "person",
        "actual": True,
        "member": [{"entity": {"reference": f"Patient/{pid}"}} for pid in members],
    }
    created = httpx.post(
        f"{sekmet.base_url}/Group",
        json=group,
        headers={"Content-Type": "application/fhir+json"},
        timeout=10,
    )
    assert created.status_code == 201, created.text
    group_id = created.json()["id"]
    encounters = httpx.get(
        f"{sekmet.base_url}/Encounter", params={"_count": "200"}, timeout=10
    ).json()
    members_encounters = {
        e["resource"]["id"]
        for e in encounters.get("entry", [])
        if e["resource"]["subject"]["reference"].split("/")[-1] in members
    }
    config = source(
        sekmet.base_url,
        kind="payer",
        resource_types=["Patient", "Encounter"],
        members={"group": f"Group/{group_id}", "batch_size": 2},
    )
    summary = await run(engine, pack, config)
    assert summary.error is None
    assert not summary.failed, summary.types
    assert summary.stored.by_type["Patient"].new == 3
    assert summary.types["Patient"].pages >= 2  # two batches of ids
    stored_encounters = (
        summary.stored.by_type["Encounter"].new if "Encounter" in summary.stored.by_type else 0
    )
    assert stored_encounters == len(members_encounters)
    # The roster is kept for clients limited to it; a member who leaves the Group
    # leaves it at the next sync.
    assert roster(engine, "ehr") == members
    group["id"] = group_id
    group["member"] = group["member"][:2]
    shrunk = httpx.put(
        f"{sekmet.base_url}/Group/{group_id}",
        json=group,
        headers={"Content-Type": "application/fhir+json"},
        timeout=10,
    )
    assert shrunk.status_code in (200, 201), shrunk.text
    assert (await run(engine, pack, config)).error is None
    assert roster(engine, "ehr") == members[:2]


def roster(engine: Engine, source_name: str) -> list[str]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(roster_members.c.patient_id)
            .where(roster_members.c.source == source_name)
            .order_by(roster_members.c.patient_id)
        )
        return [row.patient_id for row in rows]


async def test_members_by_identifier_and_a_server_that_cannot_search_by_patient(
    router: respx.MockRouter, engine: Engine, pack: RulePack
) -> None:
    metadata = {
        "resourceType": "CapabilityStatement",
        "rest": [
            {
                "mode": "server",
                "resource": [
                    {
                        "type": "Patient",
                        "interaction": [{"code": "search-type"}],
                        "searchParam": [{"name": "identifier"}, {"name": "_id"}],
                    },
                    {"type": "QuestionnaireResponse", "interaction": [{"code": "search-type"}]},
                ],
            }
        ],
    }
    router.routes.clear()
    router.get(f"{BASE}/metadata").mock(return_value=httpx.Response(200, json=metadata))
    both = searchset([patient_entry(p, "2025-01-01T00:00:00Z") for p in ("p1", "p2")])
    # The roster is found by identifier, then its Patients are pulled by _id.
    router.get(f"{BASE}/Patient", params={"identifier": "urn:m|1,urn:m|2"}).mock(
        return_value=httpx.Response(200, json=both)
    )
    router.get(f"{BASE}/Patient", params={"_id": "p1,p2"}).mock(
        return_value=httpx.Response(200, json=both)
    )

    def qr(rid: str, pid: str) -> dict[str, Any]:
        return {
            "resource": {
                "resourceType": "QuestionnaireResponse",
                "id": rid,
                "status": "completed",
                "subject": {"reference": f"Patient/{pid}"},
                "meta": {"lastUpdated": "2025-02-01T00:00:00Z"},
            }
        }

    router.get(f"{BASE}/QuestionnaireResponse").mock(
        return_value=httpx.Response(
            200,
            json=searchset([qr("q1", "p1"), qr("q2", "stranger"), qr("q3", "p2")]),
        )
    )
    config = source(
        BASE,
        kind="payer",
        resource_types=["Patient", "QuestionnaireResponse"],
        members={"identifiers": ["urn:m|1", "urn:m|2"]},
    )
    summary = await run(engine, pack, config)
    assert not summary.failed, summary.types
    assert summary.stored.by_type["QuestionnaireResponse"].new == 2
    assert summary.types["QuestionnaireResponse"].skipped_not_members == 1
    assert any("no patient search" in w for w in summary.types["QuestionnaireResponse"].warnings)
    with engine.connect() as conn:
        assert load_checkpoint(conn, "ehr", "QuestionnaireResponse") == "2025-02-01T00:00:00Z"


@pytest.mark.slow
def test_journey_sync_and_sources_commands(
    sekmet: Sekmet, tmp_path: Path, store_url: str, engine: Engine
) -> None:
    journey = str(Path(sys.executable).parent / "journey")
    (tmp_path / "journey.toml").write_text(
        "[[sources]]\n"
        'name = "hospital"\n'
        'kind = "provider"\n'
        f'base_url = "{sekmet.base_url}"\n'
        'mode = "rest"\n'
        "page_size = 4\n"
        "\n"
        "[[sources]]\n"
        'name = "offline"\n'
        'kind = "payer"\n'
        'base_url = "http://127.0.0.1:9/fhir"\n'
        'mode = "rest"\n'
        "max_attempts = 1\n"
    )
    env = {**os.environ, "COLUMNS": "200", "JOURNEY_DATABASE_URL": store_url}
    env.pop("JOURNEY_CONFIG", None)

    def journey_run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [journey, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
        )

    one = journey_run("sync", "--source", "hospital")
    assert one.returncode == 0, one.stdout + one.stderr
    assert "Sync of 'hospital'" in one.stdout
    assert "Patient" in one.stdout
    assert "Mapped " in one.stdout  # what reached the journey, as `journey import` says it
    assert "patients linked to people" in one.stdout
    everything = journey_run("sync")
    assert everything.returncode == 2  # the offline source failed, clearly
    assert "offline" in everything.stderr
    assert "cannot read the CapabilityStatement" in everything.stderr
    listed = journey_run("sources")
    assert listed.returncode == 0
    assert "hospital" in listed.stdout
    assert "ConnectError" in listed.stdout or "no response" in listed.stdout
    unknown = journey_run("sync", "--source", "nope")
    assert unknown.returncode == 1
    assert "no source named 'nope'" in unknown.stderr
    # A worker elsewhere holds one of hospital's units: a sync by hand waits its turn.
    with engine.begin() as conn:
        conn.execute(update(sync_units).values(next_run_at=utc_now()))
        assert claim_unit(conn, "worker@elsewhere", utc_now(), 60, ["hospital"]) is not None
    refused = journey_run("sync", "--source", "hospital")
    assert refused.returncode == 2
    assert "hospital: not synced: a sync of hospital is already running" in refused.stderr
    assert "held by worker@elsewhere" in refused.stderr


async def test_windows_walked_concurrently_keep_the_checkpoint_until_all_are_stored(
    engine: Engine, pack: RulePack
) -> None:
    oldest, newest = (
        patient_entry("p0", "2025-01-01T00:00:00Z"),
        patient_entry("p9", "2025-01-09T00:00:00Z"),
    )
    with respx.mock(assert_all_called=True) as mock:
        mock.get(f"{BASE}/metadata").mock(return_value=httpx.Response(200, json=METADATA))
        mock.get(f"{BASE}/Patient", params={"_sort": "_lastUpdated"}).mock(
            return_value=httpx.Response(200, json=searchset([oldest], total=10))
        )
        mock.get(f"{BASE}/Patient", params={"_sort": "-_lastUpdated"}).mock(
            return_value=httpx.Response(200, json=searchset([newest], total=10))
        )
        # Two windows (10 results, pages of 4, concurrency 2): the late one fails.
        early = mock.get(url__regex=r"_lastUpdated=ge2025-01-01T00%3A00%3A00\.000Z").mock(
            return_value=httpx.Response(
                200, json=searchset([oldest, patient_entry("p4", "2025-01-04T00:00:00Z")])
            )
        )
        late = mock.get(url__regex=r"_lastUpdated=ge2025-01-05T00%3A00%3A00\.000Z").mock(
            return_value=httpx.Response(404)
        )
        config = source(BASE, resource_types=["Patient"], page_size=4, concurrency=2)
        summary = await run(engine, pack, config)
    assert early.called
    assert late.called
    state = summary.types["Patient"]
    assert state.slices == 2
    assert state.error is not None
    assert summary.stored.by_type["Patient"].new == 2  # what arrived is kept
    with engine.connect() as conn:
        # ...but the checkpoint did not move: the failed window's data was never stored.
        assert load_checkpoint(conn, "ehr", "Patient") is None


async def test_pages_waiting_for_the_store_go_in_together_while_next_pages_are_fetched(
    engine: Engine, pack: RulePack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A window's next page is requested while its page waits for the store, and the
    pages waiting together are written in one transaction; each resource is stored
    once, and the checkpoints are the newest of everything."""
    held = build(60, datetime(2026, 1, 1, tzinfo=UTC))  # 60 Patients, 30 Encounters
    peer = Peer(held, 0)
    events: list[tuple[str, list[str]]] = []

    def answer(request: httpx.Request) -> httpx.Response:
        events.append(("fetch", [str(request.url)]))
        status, body = peer.answer(request.url.raw_path.decode(), request.url.host)
        return httpx.Response(status, content=body)

    store_group = RestSync._store_group_serialised

    def slow_store(self: RestSync, group: list[Any]) -> list[str | None]:
        if not any(kind == "stored" for kind, _ in events):
            time.sleep(0.3)  # the first group takes a while: pages pile up meanwhile
        done = store_group(self, group)
        events.append(
            (
                "stored",
                [
                    ",".join(f"{queued.resource_type}/{r['id']}" for _, r in queued.page.resources)
                    for queued in group
                ],
            )
        )
        return done

    monkeypatch.setattr(RestSync, "_store_group_serialised", slow_store)
    with respx.mock(assert_all_called=True) as mock:
        mock.get(url__startswith=BASE).mock(side_effect=answer)
        config = source(BASE, resource_types=["Patient", "Encounter"], page_size=5, concurrency=4)
        summary = await run(engine, pack, config)
    assert not summary.failed, summary.types
    groups = [pages for kind, pages in events if kind == "stored"]
    stored = [key for pages in groups for page in pages for key in page.split(",") if key]
    assert len(stored) == len(set(stored)) == 90  # each resource stored once
    assert sum(len(pages) for pages in groups) == sum(s.pages for s in summary.types.values())
    assert max(len(pages) for pages in groups) > 1
    # Second pages (next links carry _offset) were fetched before the first group was
    # stored: a walk no longer waits for its page's storage to ask for the next.
    first_stored = next(i for i, (kind, _) in enumerate(events) if kind == "stored")
    assert any("_offset=" in urls[0] for kind, urls in events[:first_stored] if kind == "fetch")
    for resource_type, count in (("Patient", 60), ("Encounter", 30)):
        assert summary.types[resource_type].slices == 4
        assert summary.stored.by_type[resource_type].new == count
        with engine.connect() as conn:
            checkpoint = load_checkpoint(conn, "ehr", resource_type)
        assert checkpoint is not None
        assert datetime.fromisoformat(checkpoint) == held[resource_type].moments[-1]
