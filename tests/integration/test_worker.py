"""`journey worker`: sync units shared by many workers through leases in the store."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select

from integration.api.app import create_app
from integration.config import load_settings
from integration.store.leases import (
    LeaseLost,
    SyncUnit,
    all_units,
    claim_unit,
    ensure_units,
    load_unit,
    release_unit,
    renew_lease,
)
from integration.store.schema import current_resources, raw_resources
from tests.conftest import database_away
from tests.servers import Sekmet, seeded_sekmet

T0 = "2026-11-23T10:00:00Z"
UNITS = [("ehr", "Patient"), ("ehr", "Encounter"), ("ehr", "QuestionnaireResponse")] + [
    (f"payer-{n}", "$export") for n in range(5)
]
SOURCES = sorted({source for source, _ in UNITS})


def test_workers_racing_for_units_never_hold_the_same_one(engine: Engine) -> None:
    with engine.begin() as conn:
        ensure_units(conn, UNITS, T0)
    claims: list[tuple[str, str, str]] = []
    start = threading.Barrier(6)

    def worker(owner: str) -> None:
        start.wait()
        while True:
            with engine.begin() as conn:
                unit = claim_unit(conn, owner, "2026-11-23T10:00:05Z", 60, SOURCES)
            if unit is None:
                return
            assert unit.lease_owner == owner
            claims.append((unit.source, unit.unit, owner))

    threads = [threading.Thread(target=worker, args=(f"w{n}",)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    per_unit = Counter((source, unit) for source, unit, _ in claims)
    assert per_unit == Counter(UNITS)  # every unit claimed, none twice
    with engine.connect() as conn:
        holders = {(u.source, u.unit): u.lease_owner for u in all_units(conn)}
    assert holders == {(source, unit): owner for source, unit, owner in claims}


def test_an_expired_lease_is_taken_over_and_the_old_holder_is_told(engine: Engine) -> None:
    with engine.begin() as conn:
        ensure_units(conn, [("ehr", "Patient")], T0)
        first = claim_unit(conn, "a", T0, 30, ["ehr"])
        assert first is not None
        # Held: nobody else gets it, and a unit not yet due is not handed out either.
        assert claim_unit(conn, "b", "2026-11-23T10:00:29Z", 30, ["ehr"]) is None
        renew_lease(conn, first, "a", "2026-11-23T10:00:20Z", 30)  # until 10:00:50
        assert claim_unit(conn, "b", "2026-11-23T10:00:45Z", 30, ["ehr"]) is None
        taken = claim_unit(conn, "b", "2026-11-23T10:00:51Z", 30, ["ehr"])
        assert taken is not None
        assert taken.lease_owner == "b"
        with pytest.raises(LeaseLost, match="ehr/Patient"):
            renew_lease(conn, first, "a", "2026-11-23T10:00:52Z", 30)
        assert not release_unit(conn, first, "a", "2026-11-23T10:00:53Z", T0, None)
        assert release_unit(conn, taken, "b", "2026-11-23T10:01:00Z", "2026-11-23T10:16:00Z", None)
        assert claim_unit(conn, "c", "2026-11-23T10:15:59Z", 30, ["ehr"]) is None
        again = claim_unit(conn, "c", "2026-11-23T10:16:00Z", 30, ["ehr"])
        assert again is not None
        unit = load_unit(conn, "ehr", "Patient")
    assert unit is not None
    assert unit.lease_owner == "c"
    assert unit.attempts == 0


def test_a_failed_run_counts_and_a_good_one_resets(engine: Engine) -> None:
    with engine.begin() as conn:
        ensure_units(conn, [("ehr", "Patient")], T0)
        unit = claim_unit(conn, "a", T0, 30, ["ehr"])
        assert unit is not None
        release_unit(conn, unit, "a", T0, T0, "HTTP 503 from /Patient")
        failed = load_unit(conn, "ehr", "Patient")
        assert failed is not None
        assert failed.attempts == 1
        assert failed.last_error == "HTTP 503 from /Patient"
        assert failed.lease_owner is None
        unit = claim_unit(conn, "a", T0, 30, ["ehr"])
        assert unit is not None
        release_unit(conn, unit, "a", T0, T0, None)
        done = load_unit(conn, "ehr", "Patient")
    assert done is not None
    assert done.attempts == 0
    assert done.last_error is None


# -- real workers against a real FHIR server ----------------------------------------------------

JOURNEY = str(Path(sys.executable).parent / "journey")


@pytest.fixture(scope="module")
def sekmet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sekmet]:
    yield from seeded_sekmet(tmp_path_factory.mktemp("sekmet"), 30)


def worker_env(tmp_path: Path, engine: Engine, sekmet: Sekmet) -> dict[str, str]:
    config = tmp_path / "journey.toml"
    # Small pages, few requests a second: each unit takes seconds, long enough to kill.
    config.write_text(
        "[[sources]]\n"
        'name = "hospital"\nkind = "provider"\nmode = "rest"\n'
        f'base_url = "{sekmet.base_url}"\n'
        "page_size = 3\nrate_limit = 6\n",
        encoding="utf-8",
    )
    return {
        **os.environ,
        "COLUMNS": "200",
        "JOURNEY_CONFIG": str(config),
        "JOURNEY_DATABASE_URL": engine.url.render_as_string(hide_password=False),
        "JOURNEY_WORKER_LEASE_SECONDS": "3",
        "JOURNEY_WORKER_POLL_SECONDS": "0.5",
        "JOURNEY_SYNC_INTERVAL_SECONDS": "3600",
    }


def start_worker(env: dict[str, str], cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [JOURNEY, "worker"],
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(condition: object, what: str, seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, what
        time.sleep(0.2)


def held_by(units: list[SyncUnit], process: subprocess.Popen[str]) -> list[SyncUnit]:
    """Lease owners read host:pid:nonce."""
    return [u for u in units if u.lease_owner and f":{process.pid}:" in u.lease_owner]


def stored_counts(engine: Engine) -> tuple[dict[str, int], dict[str, int]]:
    with engine.connect() as conn:
        raw = conn.execute(
            select(raw_resources.c.resource_type, func.count()).group_by(
                raw_resources.c.resource_type
            )
        ).all()
        current = conn.execute(
            select(current_resources.c.resource_type, func.count()).group_by(
                current_resources.c.resource_type
            )
        ).all()
    return {k: int(n) for k, n in raw}, {k: int(n) for k, n in current}


@pytest.mark.slow
def test_two_workers_share_the_units_and_a_killed_ones_unit_is_taken_over(
    engine: Engine, sekmet: Sekmet, tmp_path: Path
) -> None:
    env = worker_env(tmp_path, engine, sekmet)
    doomed = start_worker(env, tmp_path)
    survivor = start_worker(env, tmp_path)
    try:

        def doomed_holds_a_unit_midway() -> bool:
            with engine.connect() as conn:
                held = [
                    u
                    for u in all_units(conn)
                    if u.lease_owner and f":{doomed.pid}:" in u.lease_owner
                ]
                some = conn.execute(select(func.count()).select_from(raw_resources)).scalar_one()
            return bool(held) and some > 0

        wait_for(doomed_holds_a_unit_midway, "the first worker never got to work")
        doomed.send_signal(signal.SIGKILL)
        doomed.communicate(timeout=10)
        with engine.connect() as conn:
            orphaned = [
                u for u in all_units(conn) if u.lease_owner and f":{doomed.pid}:" in u.lease_owner
            ]
        assert orphaned, "the killed worker's lease should still be on its unit"

        def all_units_done() -> bool:
            with engine.connect() as conn:
                units = all_units(conn)
            return len(units) == 3 and all(
                u.lease_owner is None and u.last_finished_at for u in units
            )

        wait_for(all_units_done, "the surviving worker did not finish every unit")
        survivor.send_signal(signal.SIGTERM)
        out, err = survivor.communicate(timeout=30)
    finally:
        for process in (doomed, survivor):
            if process.poll() is None:
                process.kill()
                process.communicate()
    assert survivor.returncode == 0, out[-2000:] + err[-2000:]
    # The survivor ran the orphaned unit after its lease ran out.
    for unit in orphaned:
        assert f"hospital/{unit.unit}: done" in out
    with engine.connect() as conn:
        assert all(u.last_error is None for u in all_units(conn))
    raw, current = stored_counts(engine)
    on_server = {
        kind: httpx.get(f"{sekmet.base_url}/{kind}", params={"_summary": "count"}).json()["total"]
        for kind in ("Patient", "Encounter", "QuestionnaireResponse")
    }
    on_server = {kind: count for kind, count in on_server.items() if count}
    assert on_server["Patient"] == 30
    assert current == on_server  # nothing lost
    assert raw == on_server  # nothing stored twice, though a unit was pulled again

    # The status views show the units: `journey sources` and GET /sources.
    listed = subprocess.run(
        [JOURNEY, "sources"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert listed.returncode == 0, listed.stderr
    assert "Worker units" in listed.stdout
    assert "Encounter" in listed.stdout
    settings = load_settings(tmp_path / "journey.toml", api_keys=["k"])
    with TestClient(create_app(settings, engine)) as client:
        [item] = client.get("/sources", headers={"Authorization": "Bearer k"}).json()["items"]
    units = {unit["unit"]: unit for unit in item["worker_units"]}
    assert set(units) == {"Patient", "Encounter", "QuestionnaireResponse"}
    assert all(unit["lease_owner"] is None and unit["last_finished"] for unit in units.values())


@pytest.mark.slow
@pytest.mark.parametrize("store_url", ["postgresql"], indirect=True)
def test_the_database_going_away_mid_sync_is_reported_retried_and_loses_nothing(
    engine: Engine, sekmet: Sekmet, tmp_path: Path, postgres_admin: Engine
) -> None:
    env = {**worker_env(tmp_path, engine, sekmet), "JOURNEY_WORKER_RETRY_SECONDS": "1"}
    worker = start_worker(env, tmp_path)
    try:

        def midway() -> bool:
            with engine.connect() as conn:
                some = conn.execute(select(func.count()).select_from(raw_resources)).scalar_one()
            return bool(some)

        wait_for(midway, "the worker never started storing")
        # The sync stores a page every fraction of a second: it meets the outage.
        with database_away(postgres_admin, str(engine.url.database)):
            time.sleep(3)

        def all_units_done() -> bool:
            with engine.connect() as conn:
                units = all_units(conn)
            return len(units) == 3 and all(
                u.lease_owner is None and u.last_finished_at and u.last_error is None for u in units
            )

        wait_for(all_units_done, "the worker did not finish every unit after the outage", 120)
        worker.send_signal(signal.SIGTERM)
        out, err = worker.communicate(timeout=30)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.communicate()
    assert worker.returncode == 0, out[-2000:] + err[-2000:]
    said = out + err
    assert "store error during the sync (the unit runs again)" in said or (
        "store unavailable, trying again" in said
    ), said[-3000:]
    raw, current = stored_counts(engine)
    assert current["Patient"] == 30
    assert raw == current  # each resource once: what was stored before the outage was kept
