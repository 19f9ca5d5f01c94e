"""The COPY path for trusted bulk files on PostgreSQL stores exactly what the row-by-row
path stores (`integration.store.bulk_copy`).

One NDJSON set is imported trusted into two fresh PostgreSQL databases, once row by
row (`bulk_copy=False`) and once with COPY, and every table is compared row for row.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import respx
from sqlalchemy import Engine, select, text

from integration.cli.demo_population import PROVIDER, write_sample
from integration.config import load_settings
from integration.ingest.pipeline import IngestPipeline, IngestSummary
from integration.ingest.policy import WayIn, ingest_pipeline
from integration.store import bulk_copy
from integration.store.engine import open_store
from integration.store.raw import IncomingResource, write_resources
from integration.store.schema import metadata, quarantine, raw_resources
from mappings.rulepack import RulePack
from tests.conftest import encounter, patient, throwaway_store_url

MAX_BYTES = 1 << 16
# Times an import stamps from the clock (`utc_now`) into the store's `*_at` columns
# (received_at, last_seen_at, derived_at, computed_at, occurred_at of a feed event,
# created_at ...): the two imports run seconds apart, so these are the only values
# allowed to differ between the two stores. Row ids are compared: COPY hands them
# out in the same order.
STAMPED = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


@pytest.fixture
def two_stores(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Engine, Engine]]:
    """Two fresh, migrated PostgreSQL stores."""
    with (
        throwaway_store_url("postgresql", request, tmp_path / "a") as first,
        throwaway_store_url("postgresql", request, tmp_path / "b") as second,
    ):
        stores = open_store(first), open_store(second)
        try:
            yield stores
        finally:
            for store in stores:
                store.dispose()


JANUARY, FEBRUARY = "2025-01-01T00:00:00Z", "2025-02-01T00:00:00Z"


def bad_and_good_lines() -> list[dict[str, Any] | str]:
    """Good lines around every kind of bad one, and versions of one resource that
    must settle the same way (two in one batch, one late, one without a time)."""
    return [
        patient("before-bad"),
        '{"resourceType": "Patient", "id": "cut',  # line 2: malformed JSON
        {"resourceType": "Spaceship", "id": "x1"},  # line 3: unknown resourceType
        {"id": "no-type"},  # line 4: missing resourceType
        {"resourceType": "Patient", "name": [{"family": "Anon"}]},  # line 5: no id
        patient("bad id!"),  # line 6: an invalid id
        patient("huge", text={"div": "x" * MAX_BYTES}),  # line 7: over the size limit
        patient("after-bad"),
        encounter(
            "e1", "after-bad", meta={"versionId": "2", "lastUpdated": "2025-02-01T00:00:00Z"}
        ),
        encounter(
            "e1", "after-bad", meta={"versionId": "1", "lastUpdated": "2025-01-01T00:00:00Z"}
        ),
        encounter("e1", "after-bad", klass="HH", meta={"versionId": "3"}),
        patient("twice"),
        patient("twice"),  # the same content again in one batch: one version
        {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": patient("pb")}]},
    ]


def write_set(folder: Path) -> list[Path]:
    """The demo population's clinic files, and one file of bad and odd lines."""
    files = write_sample(folder, people=30)
    odd = folder / "odd.ndjson"
    odd.write_text(
        "\n".join(
            line if isinstance(line, str) else orjson.dumps(line).decode()
            for line in bad_and_good_lines()
        )
        + "\n"
    )
    return [files[PROVIDER], odd]


def trusted_import(
    engine: Engine, pack: RulePack, files: list[Path], by_copy: bool
) -> IngestSummary:
    pipeline = IngestPipeline(
        engine,
        pack,
        PROVIDER,
        MAX_BYTES,
        batch_size=40,
        store_batch_size=60,  # several batches per file, and versions across batches
        validate=False,
        bulk_copy=by_copy,
    )
    assert pipeline.by_copy is by_copy
    return pipeline.run(files)


def every_row(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every table's rows, sorted, with clock-stamped times masked."""
    tables: dict[str, list[tuple[Any, ...]]] = {}
    with engine.connect() as conn:
        for table in metadata.sorted_tables:
            columns = [column.name for column in table.columns]
            rows = conn.execute(text(f"SELECT * FROM {table.name}")).all()
            tables[table.name] = sorted(
                (
                    tuple(_masked(name, value) for name, value in zip(columns, row, strict=True))
                    for row in rows
                ),
                key=repr,
            )
    return tables


def _masked(column: str, value: Any) -> Any:
    if column.endswith("_at") and isinstance(value, str) and STAMPED.match(value):
        return "<stamped>"
    return value


def test_copy_stores_every_table_exactly_as_row_by_row(
    two_stores: tuple[Engine, Engine],
    pack: RulePack,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    files = write_set(tmp_path / "data")
    row_by_row, by_copy = two_stores
    copied_batches = []
    copy_versions = bulk_copy.copy_versions

    def counting(*args: Any) -> None:
        copied_batches.append(len(args[1]))
        copy_versions(*args)

    monkeypatch.setattr("integration.store.raw.copy_versions", counting)

    before = trusted_import(row_by_row, pack, files, by_copy=False)
    assert not copied_batches
    after = trusted_import(by_copy, pack, files, by_copy=True)
    assert len(copied_batches) > 3  # it was the COPY path, batch after batch

    assert after.by_type == before.by_type
    assert after.problems == before.problems
    assert after.warnings == before.warnings
    assert before.total("imported") > 250
    expected = every_row(row_by_row)
    assert sum(len(rows) for rows in expected.values()) > 500
    found = every_row(by_copy)
    for table, rows in expected.items():
        assert found[table] == rows, f"{table} differs"


def test_bad_lines_are_quarantined_with_file_and_line_and_the_good_ones_stored(
    two_stores: tuple[Engine, Engine], pack: RulePack, tmp_path: Path
) -> None:
    engine = two_stores[0]
    files = write_set(tmp_path / "data")
    odd = str(files[1])
    summary = trusted_import(engine, pack, files[1:], by_copy=True)

    problems = {(p.origin, p.location): (p.fhir_path, p.error) for p in summary.problems}
    assert set(problems) == {(odd, f"line {n}") for n in (2, 3, 4, 6, 7)}
    assert problems[(odd, "line 2")][1].startswith("malformed JSON")
    assert problems[(odd, "line 3")] == (
        "resourceType",
        "unknown resourceType 'Spaceship' in FHIR R4",
    )
    assert problems[(odd, "line 4")] == ("resourceType", "missing resourceType")
    assert problems[(odd, "line 6")] == ("Patient.id", "id is not a valid FHIR id")
    assert "over the limit of 65536 bytes" in problems[(odd, "line 7")][1]
    # A trusted line without an id is kept, under a content-hash id, with a warning.
    assert summary.warnings == [
        f"{odd}, line 5: Patient.id: missing; stored under a content-hash id"
    ]
    with engine.connect() as conn:
        stored = conn.execute(
            select(raw_resources.c.location, raw_resources.c.resource_id).order_by(
                raw_resources.c.id
            )
        ).all()
        quarantined = conn.execute(
            select(quarantine.c.origin, quarantine.c.location).order_by(quarantine.c.id)
        ).all()
    assert [location for location, _ in stored] == [
        "line 1",
        "line 5",
        "line 8",
        "line 9",
        "line 10",
        "line 11",
        "line 12",
        "line 14, entry 0",
    ]
    assert stored[1][1].startswith("h-")
    assert quarantined == [(odd, f"line {n}") for n in (2, 3, 4, 6, 7)]


def test_importing_the_same_files_again_stores_nothing_new(
    two_stores: tuple[Engine, Engine], pack: RulePack, tmp_path: Path
) -> None:
    engine = two_stores[0]
    files = write_set(tmp_path / "data")
    first = trusted_import(engine, pack, files, by_copy=True)
    stored = every_row(engine)
    again = trusted_import(engine, pack, files, by_copy=True)

    assert again.total("imported") == 0
    assert again.total("unchanged") == first.total("imported") + first.total("unchanged")
    assert again.total("quarantined") == first.total("quarantined")
    assert every_row(engine) == stored


@pytest.mark.parametrize(
    ("way", "validate", "setting", "copies_on_postgresql"),
    [
        (WayIn.FILES, False, True, True),  # a trusted import or Bulk download
        (WayIn.FILES, True, True, False),  # validated: its cost is validation
        (WayIn.PAGES, False, True, False),  # a page is small
        (WayIn.PUSH, False, True, False),
        (WayIn.FILES, False, False, False),  # JOURNEY_TRUSTED_BULK_COPY=false
    ],
)
def test_copy_is_for_trusted_files_on_postgresql_unless_turned_off(
    engine: Engine,
    pack: RulePack,
    way: WayIn,
    validate: bool,
    setting: bool,
    copies_on_postgresql: bool,
) -> None:
    settings = load_settings(trusted_bulk_copy=setting)
    pipeline = ingest_pipeline(engine, pack, settings, PROVIDER, way, validate)
    postgresql = engine.dialect.name == "postgresql"
    assert pipeline.by_copy is (copies_on_postgresql and postgresql)


async def test_a_trusted_bulk_export_is_stored_with_copy_on_postgresql(
    engine: Engine, pack: RulePack, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.integration.test_bulk_sync import BASE, STATUS, bulk_source, fast, manifest, run

    copied: list[int] = []
    copy_versions = bulk_copy.copy_versions

    def counting(*args: Any) -> None:
        copied.append(len(args[1]))
        copy_versions(*args)

    monkeypatch.setattr("integration.store.raw.copy_versions", counting)
    lines = [orjson.dumps(patient(f"p{n}")) for n in range(7)]
    lines.insert(3, b'{"resourceType": "Patient", "id": "cut')
    with respx.mock(assert_all_called=False) as router:
        router.get(f"{BASE}/$export").mock(
            return_value=httpx.Response(202, headers={"Content-Location": STATUS})
        )
        router.delete(STATUS).mock(return_value=httpx.Response(202))
        router.get(STATUS).mock(return_value=httpx.Response(200, json=manifest()))
        router.get("https://files.example/patients.ndjson").mock(
            return_value=httpx.Response(200, content=b"\n".join(lines) + b"\n")
        )
        source = fast(bulk_source(BASE, validate_resources=False))
        summary = await run(engine, pack, source)

    assert summary.stored.by_type["Patient"].new == 7
    assert "line 4" in str(summary.stored.problems[0])
    postgresql = engine.dialect.name == "postgresql"
    assert (sum(copied) == 7) is postgresql
    with engine.connect() as conn:
        stored = conn.execute(select(raw_resources.c.resource_id).order_by(raw_resources.c.id))
        assert list(stored.scalars()) == [f"p{n}" for n in range(7)]


def test_versions_another_writer_stored_since_the_lookup_are_skipped_as_row_by_row(
    two_stores: tuple[Engine, Engine], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two imports of one source at once: a version the other stored after this batch
    looked is already there when it writes. Played here by a lookup that sees nothing."""
    batch = [
        IncomingResource(
            PROVIDER, "Patient", f"p{n}", f"h:{n}", JANUARY, None, "f.ndjson", f"line {n}", "{}"
        )
        for n in range(5)
    ]
    for engine, by_copy in zip(two_stores, (False, True), strict=True):
        with engine.begin() as conn:
            write_resources(conn, batch[:3], "2026-01-01T00:00:00Z", by_copy)
        with monkeypatch.context() as patched:
            patched.setattr("integration.store.raw.current_raw_keys", lambda *_: {})
            patched.setattr("integration.store.raw._current_raw_keys", lambda *_: {})
            with engine.begin() as conn:
                write_resources(conn, batch, "2026-01-02T00:00:00Z", by_copy)
    expected, found = (every_row(engine) for engine in two_stores)
    assert found == expected
    assert len(found["raw_resources"]) == len(found["current_resources"]) == 5
