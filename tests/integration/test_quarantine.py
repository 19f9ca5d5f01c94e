"""The quarantine stays true: entries keyed by content (the place is information), closed
by themselves when fixed, or by an operator with a reason (CLI and API); counts honest;
content kept (its head for over-limit input) and said to be cut when it was."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from integration.api.app import create_app
from integration.config import Settings
from integration.store import quarantine
from integration.store.queries import store_status
from tests.conftest import ImportFn, patient, write_ndjson

JOURNEY = str(Path(sys.executable).parent / "journey")
BAD_A = patient("a", birthDate="1970-13-01")
BAD_B = patient("b", gender="robot")


def open_entries(engine: Engine) -> list[dict[str, object]]:
    with engine.connect() as conn:
        return quarantine.entries(conn, 100)


def test_deleting_one_bad_line_closes_its_entry_and_duplicates_no_other(
    tmp_path: Path, engine: Engine, import_files: ImportFn
) -> None:
    path = write_ndjson(tmp_path / "f.ndjson", "{oops", BAD_A, patient("ok"), BAD_B)
    import_files(path)
    assert len(open_entries(engine)) == 3
    # The first line deleted: every other line moves up one.
    write_ndjson(path, BAD_A, patient("ok"), BAD_B)
    import_files(path)
    still_open = open_entries(engine)
    assert sorted(str(e["resource_id"]) for e in still_open) == ["a", "b"]
    assert {e["location"] for e in still_open} == {"line 1", "line 3"}  # places brought up to date
    with engine.connect() as conn:
        everything = quarantine.entries(conn, 100, include_closed=True)
        assert store_status(conn)["quarantine_open"] == 2
    assert len(everything) == 3
    [gone] = [e for e in everything if e["resolved_at"]]
    assert (gone["resolution"], gone["resolution_note"]) == ("fixed", "no longer in the file")


def test_the_same_bad_content_left_in_another_file_stays_open(
    tmp_path: Path, engine: Engine, import_files: ImportFn
) -> None:
    one = write_ndjson(tmp_path / "one.ndjson", BAD_A)
    two = write_ndjson(tmp_path / "two.ndjson", patient("x"), BAD_A)
    import_files(one, two)
    assert len(open_entries(engine)) == 2  # one per file it is in
    write_ndjson(two, patient("x"))  # fixed in two.ndjson only
    import_files(two)
    [entry] = open_entries(engine)
    assert entry["origin"] == str(one)


def test_an_over_limit_json_file_keeps_its_head_and_says_it_was_cut(
    tmp_path: Path, engine: Engine, import_files: ImportFn
) -> None:
    big = patient("big", name=[{"family": "x" * 20_000}])
    (tmp_path / "big.json").write_bytes(orjson.dumps(big))
    line = write_ndjson(tmp_path / "line.ndjson", big)
    import_files(tmp_path / "big.json", line, max_bytes=8_000)
    with engine.connect() as conn:
        entries = [quarantine.entry(conn, int(str(e["id"]))) for e in quarantine.entries(conn, 10)]
    assert len(entries) == 2
    for entry in entries:
        assert entry is not None
        assert entry["content_truncated"] is True
        assert str(entry["content"]).startswith('{"resourceType":"Patient","id":"big"')
        assert 0 < len(str(entry["content"])) <= 4096


def test_an_operator_dismisses_an_entry_with_a_reason_and_it_stays_closed(
    tmp_path: Path, engine: Engine, import_files: ImportFn
) -> None:
    path = write_ndjson(tmp_path / "f.ndjson", BAD_A)
    import_files(path)
    [entry] = open_entries(engine)
    env = {
        **os.environ,
        "JOURNEY_DATABASE_URL": engine.url.render_as_string(hide_password=False),
        "COLUMNS": "250",
    }

    def journey(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [JOURNEY, "quarantine", *args],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )

    no_reason = journey("dismiss", str(entry["id"]))
    assert no_reason.returncode != 0
    done = journey("dismiss", str(entry["id"]), "--reason", "legacy test patient, never fixed")
    assert done.returncode == 0, done.stderr
    assert "closed as dismissed" in done.stdout
    assert journey("dismiss", "999999", "--reason", "x").returncode == 1
    assert open_entries(engine) == []
    import_files(path)  # the same content again: a dismissed entry stays closed
    assert open_entries(engine) == []
    listed = journey("--all")
    assert "dismissed" in listed.stdout
    with engine.connect() as conn:
        closed = quarantine.entry(conn, int(str(entry["id"])))
        status = store_status(conn)
    assert closed is not None
    assert closed["resolution_note"] == "legacy test patient, never fixed"
    assert str(closed["resolved_by"]).startswith("cli:")
    assert status["quarantine_open"] == 0
    assert status["quarantine_closed_by_operator"] == 1


def test_the_api_lists_shows_and_resolves_entries(
    tmp_path: Path, engine: Engine, import_files: ImportFn
) -> None:
    import_files(write_ndjson(tmp_path / "f.ndjson", BAD_A, BAD_B))
    auth = {"Authorization": "Bearer k"}
    with TestClient(create_app(Settings(api_keys=["k"]), engine)) as client:
        assert client.get("/quarantine").status_code == 401
        page = client.get("/quarantine", params={"limit": 1}, headers=auth).json()
        [first] = page["items"]
        assert page["next_after"] == first["id"]
        second = client.get(
            "/quarantine", params={"after": page["next_after"]}, headers=auth
        ).json()
        assert len(second["items"]) == 1
        assert second["next_after"] is None
        shown = client.get(f"/quarantine/{first['id']}", headers=auth).json()
        assert '"resourceType":"Patient"' in shown["content"]
        empty = client.post(f"/quarantine/{first['id']}/resolve", json={"reason": ""}, headers=auth)
        assert empty.status_code in (400, 422)
        assert empty.headers["content-type"].startswith("application/problem+json")
        resolved = client.post(
            f"/quarantine/{first['id']}/resolve",
            json={"reason": "file deleted at the source"},
            headers=auth,
        )
        assert resolved.status_code == 200
        assert resolved.json()["resolution"] == "resolved"
        assert resolved.json()["resolved_by"].startswith("api-key:")
        assert resolved.json()["resolved_by"].split(":")[1] != "k"
        missing = client.post("/quarantine/999999/dismiss", json={"reason": "x"}, headers=auth)
        assert missing.status_code == 404
        status = client.get("/status", headers=auth).json()
    assert status["quarantine_open"] == 1


def test_upgrading_rekeys_old_entries_by_content_and_folds_duplicates(store_url: str) -> None:
    from integration.store.engine import create_store_engine, migrate
    from integration.store.raw import Rejected

    engine = create_store_engine(store_url)
    try:
        migrate(engine, "0007")
        content = orjson.dumps(BAD_A).decode()
        with engine.begin() as conn:
            for n, place in enumerate(("line 1", "line 7")):  # keyed by place before 0008
                conn.execute(
                    quarantine.quarantine.insert().values(
                        quarantine_key=f"old-{n}",
                        source="s",
                        origin="f.ndjson",
                        location=place,
                        error="Patient.birthDate: invalid",
                        content=content,
                        content_truncated=False,
                        received_at=f"2026-01-0{n + 1}T00:00:00Z",
                    )
                )
        with engine.begin() as conn:  # fixed since in its newest sighting, but
            conn.execute(  # the older one was still open: the entry must stay open
                quarantine.quarantine.update()
                .where(quarantine.quarantine.c.quarantine_key == "old-1")
                .values(resolved_at="2026-01-03T00:00:00Z")
            )
        migrate(engine)
        with engine.connect() as conn:
            [entry] = quarantine.entries(conn, 10)
            key = conn.execute(quarantine.quarantine.select()).one().quarantine_key
        assert entry["location"] == "line 7"  # the newest stays
        assert entry["stage"] == "intake"
        assert entry["resolved_at"] is None
        assert (entry["received_at"], entry["last_seen_at"]) == (
            "2026-01-01T00:00:00Z",
            "2026-01-02T00:00:00Z",
        )
        again = Rejected("s", "f.ndjson", "line 2", "other", content=content.encode(), in_file=True)
        assert key == again.key  # what the import computes now finds it
    finally:
        engine.dispose()
