"""The journey feed: each change to records, people and episodes is an event in the
transaction of the change; unchanged records emit nothing; a cursor resumes where a
consumer stopped, and bad cursors and types are named problems."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from integration.api.app import create_app
from integration.config import Settings
from integration.journey.episodes import refresh_episodes
from integration.journey.identity import person_changes
from integration.journey.update import flag_all, update_journey
from integration.store import feed as feed_store
from mappings.rulepack import RulePack
from tests.conftest import ImportFn, encounter, patient, write_ndjson

KEY = "test-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
ICD = "http://hl7.org/fhir/sid/icd-10-cm"


@pytest.fixture
def client(engine: Engine) -> Iterator[TestClient]:
    settings = Settings(api_keys=[KEY], database_url=str(engine.url), page_size=500)
    with TestClient(create_app(settings, engine)) as test_client:
        yield test_client


@pytest.fixture
def import_files(engine: Engine, pack: RulePack, import_files: ImportFn) -> ImportFn:
    """An import, then the episode refresh journey serve runs in the background."""

    def run(*paths: Path | str, source: str = "test-source") -> Any:
        summary = import_files(*paths, source=source)
        refresh_episodes(engine, pack)
        return summary

    return run


def visit(eid: str, code: str) -> dict[str, Any]:
    return encounter(eid, "p1", reasonCode=[{"coding": [{"system": ICD, "code": code}]}])


def drain(
    client: TestClient, after: str | None = None, **params: Any
) -> tuple[list[dict[str, Any]], str]:
    body = client.get("/feed", headers=AUTH, params={"after": after, **params} if after else params)
    assert body.status_code == 200, body.text
    page = body.json()
    return page["items"], page["next_cursor"]


def types_of(events: list[dict[str, Any]]) -> list[str]:
    return sorted(e["type"] for e in events)


def test_an_import_is_reported_and_an_unchanged_one_is_not(
    client: TestClient, tmp_path: Path, import_files: ImportFn
) -> None:
    data = write_ndjson(tmp_path / "a.ndjson", patient("p1"), visit("e1", "I10"))
    import_files(data, source="clinic")
    events, cursor = drain(client)
    assert types_of(events) == ["episode.added", "person.created", "record.added"]
    assert len({e["id"] for e in events}) == len(events)
    record = next(e for e in events if e["type"] == "record.added")
    assert record["person_id"] is not None
    assert "payload" not in record

    # The same data again: nothing changed, nothing said.
    import_files(data, source="clinic")
    again, cursor = drain(client, cursor)
    assert again == []

    # A new version that says something else: one record changed, its episode too.
    changed = write_ndjson(tmp_path / "b.ndjson", visit("e1", "E11.9"))
    import_files(changed, source="clinic")
    after_change, cursor = drain(client, cursor, payload="full")
    assert "record.changed" in types_of(after_change)
    payload = next(e for e in after_change if e["type"] == "record.changed")["payload"]
    assert payload["concern_codes"] == [f"{ICD}|E11.9"]
    # The hypertension episode went, a diabetes one came.
    assert {"episode.added", "episode.removed"} <= set(types_of(after_change))


def test_a_remap_that_changes_nothing_emits_nothing(
    client: TestClient, engine: Engine, pack: RulePack, tmp_path: Path, import_files: ImportFn
) -> None:
    import_files(write_ndjson(tmp_path / "a.ndjson", patient("p1"), visit("e1", "I10")))
    _, cursor = drain(client)
    flag_all(engine)
    update_journey(engine, pack)
    refresh_episodes(engine, pack)  # the person was marked: the same episodes come out
    assert drain(client, cursor)[0] == []


def test_types_and_person_narrow_the_feed(
    client: TestClient, tmp_path: Path, import_files: ImportFn
) -> None:
    import_files(write_ndjson(tmp_path / "a.ndjson", patient("p1"), visit("e1", "I10")))
    records, _ = drain(client, types="record.added,record.changed")
    assert types_of(records) == ["record.added"]
    both, _ = drain(client, types=["person.created", "episode.added"])
    assert types_of(both) == ["episode.added", "person.created"]
    person = both[0]["person_id"]
    assert len(drain(client, person=person)[0]) == 3
    assert drain(client, person="someone-else")[0] == []


def test_source_and_concern_narrow_the_feed(
    client: TestClient, tmp_path: Path, import_files: ImportFn
) -> None:
    import_files(
        write_ndjson(tmp_path / "a.ndjson", patient("p1"), visit("e1", "I10")), source="clinic_a"
    )
    import_files(
        write_ndjson(tmp_path / "b.ndjson", patient("p2"), visit("e2", "E11.9")), source="payer"
    )
    # "clinic_a" holds "_", a LIKE wildcard: "clinicXa" must not match it.
    clinic, _ = drain(client, source="clinic_a")
    assert types_of(clinic) == ["episode.added", "person.created", "record.added"]
    assert drain(client, source="clinicXa")[0] == []
    hypertension, _ = drain(client, concern="icd10cm:I10")
    assert types_of(hypertension) == ["episode.added"]
    assert hypertension[0]["person_id"] == clinic[0]["person_id"]
    assert drain(client, concern="icd10cm:I10", source="payer")[0] == []


def test_bad_types_and_cursors_are_named_problems(
    client: TestClient, engine: Engine, tmp_path: Path, import_files: ImportFn
) -> None:
    unknown = client.get("/feed", headers=AUTH, params={"types": "record.added,record.eaten"})
    assert unknown.status_code == 400
    assert unknown.json()["invalid_params"][0]["name"] == "types"
    assert (
        client.get("/feed", headers=AUTH, params={"after": "bm90LWEtY3Vyc29y"}).status_code == 400
    )
    assert client.get("/feed", headers=AUTH, params={"after": "%%%"}).status_code == 400
    import_files(write_ndjson(tmp_path / "a.ndjson", patient("p1"), visit("e1", "I10")))
    events, last = drain(client)
    first_cursor = drain(client, limit=1)[1]
    # A cursor past anything this store has issued.
    from integration.api.cursors import encode_cursor

    ahead = client.get("/feed", headers=AUTH, params={"after": encode_cursor(["999999"])})
    assert ahead.status_code == 400
    # Retention passes: all but the newest event go; an old cursor is gone, not wrong.
    with engine.begin() as conn:
        assert feed_store.prune(conn, "9999-01-01T00:00:00Z") == len(events) - 1
    gone = client.get("/feed", headers=AUTH, params={"after": first_cursor})
    assert gone.status_code == 410
    assert gone.headers["content-type"] == "application/problem+json"
    assert drain(client, last)[0] == []  # the newest cursor still works


def test_regrouping_people_is_reported_as_created_changed_unmerged_merged() -> None:
    a, b, c = ("s1", "A"), ("s2", "B"), ("s3", "C")
    # A and B were person X; C is new and joins X; nothing else.
    joined = person_changes({a: "X", b: "X"}, {a: "X", b: "X", c: "X"}, {})
    assert [(e.type, e.subject) for e in joined] == [("person.changed", "X")]
    # B is split off X into a new person Y.
    split = person_changes({a: "X", b: "X"}, {a: "X", b: "Y"}, {})
    assert sorted((e.type, e.subject) for e in split) == [
        ("person.changed", "X"),
        ("person.unmerged", "Y"),
    ]
    assert next(e for e in split if e.subject == "Y").payload == {
        "patients": [{"source": "s2", "patient_id": "B"}],
        "from": ["X"],
    }
    # Y's Patient is linked into X: Y is merged into X.
    merged = person_changes({a: "X", b: "Y"}, {a: "X", b: "X"}, {"Y": "X"})
    assert sorted((e.type, e.subject) for e in merged) == [
        ("person.changed", "X"),
        ("person.merged", "Y"),
    ]
    fresh = person_changes({}, {c: "Z"}, {})
    assert [(e.type, e.subject) for e in fresh] == [("person.created", "Z")]


@pytest.mark.parametrize("store_url", ["sqlite", "postgresql"], indirect=True)
def test_an_import_killed_mid_way_loses_no_event_and_repeats_none(
    engine: Engine, store_url: str, tmp_path: Path
) -> None:
    """kill -9 while records and their events are being written: every record stored
    has exactly one record.added event, and no event names a record that is not there;
    the import run again completes the rest without a second event for any record."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from sqlalchemy import func, select

    from integration.store.schema import feed_events, job_records

    resources: list[dict[str, Any]] = [patient(f"p{i}") for i in range(300)]
    resources += [
        encounter(f"e{i}-{j}", f"p{i}", start=f"2025-0{1 + j}-10T09:00:00Z")
        for i in range(300)
        for j in range(6)
    ]
    data = write_ndjson(tmp_path / "many.ndjson", *resources)
    journey = str(Path(sys.executable).parent / "journey")
    env = {
        **os.environ,
        "JOURNEY_DATABASE_URL": store_url,
        "JOURNEY_BATCH_SIZE": "100",
        "JOURNEY_VALIDATION_PROCESSES": "0",
    }
    command = [journey, "import", str(data), "--source", "clinic"]

    def counts() -> tuple[int, int]:
        with engine.connect() as conn:
            records = conn.execute(select(func.count()).select_from(job_records)).scalar_one()
            added = conn.execute(
                select(func.count()).where(feed_events.c.type == "record.added")
            ).scalar_one()
        return int(records), int(added)

    importing = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 60
    while counts()[0] == 0:  # wait until the journey is being written
        assert importing.poll() is None, "the import ended before writing records"
        assert time.monotonic() < deadline, "no records came"
        time.sleep(0.05)
    importing.send_signal(signal.SIGKILL)
    importing.wait(timeout=20)

    def check() -> int:
        with engine.connect() as conn:
            stored = set(conn.execute(select(job_records.c.id)).scalars())
            told = list(
                conn.execute(
                    select(feed_events.c.subject).where(feed_events.c.type == "record.added")
                ).scalars()
            )
        assert len(told) == len(set(told)), "a record was announced twice"
        assert set(told) == stored, "a stored record without its event, or the reverse"
        return len(stored)

    partial = check()
    assert partial < 1800  # killed before the end (else the test proves nothing)
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert check() == 1800
