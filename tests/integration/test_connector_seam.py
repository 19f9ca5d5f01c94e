"""A new kind of source is a connector and one registry line: storing, quarantine,
checkpoints and the journey come from the runner every connector shares."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping

import httpx
import pytest
from sqlalchemy import Engine

from connectors.errors import ConnectorError
from connectors.files import RawItem
from connectors.protocol import PulledBatch
from integration.config import Settings
from integration.sources import SourceConfig
from integration.store import queries
from integration.store.quarantine import entries as quarantine_entries
from integration.store.sync_state import load_checkpoint, states
from integration.sync import runners
from integration.sync.connected import ConnectedSync
from integration.sync.context import SyncListener, SyncRun
from integration.sync.runners import MODES, Mode, sync_source
from integration.sync.summary import SyncSummary
from mappings.rulepack import RulePack
from tests.conftest import encounter, patient


class DropFolder:
    """A toy connector: batches handed to it, the checkpoints it was asked from kept."""

    def __init__(self, batches: list[PulledBatch], fail_after: int | None = None) -> None:
        self.batches = batches
        self.fail_after = fail_after
        self.asked_from: list[dict[str, str | None]] = []

    async def pull(self, checkpoints: Mapping[str, str | None]) -> AsyncIterator[PulledBatch]:
        self.asked_from.append(dict(checkpoints))
        for number, batch in enumerate(self.batches):
            if self.fail_after is not None and number == self.fail_after:
                raise ConnectorError("drop folder: the share went away")
            yield batch


def item(resource: dict[str, object], where: str) -> RawItem:
    return RawItem("drop://share", where, resource=resource)


SOURCE = SourceConfig.model_validate(
    {
        "name": "drop",
        "kind": "payer",
        "base_url": "https://drop.example/fhir",
        "mode": "rest",
        "resource_types": ["Patient", "Encounter"],
    }
)


def batches() -> list[PulledBatch]:
    return [
        PulledBatch("Patient", [item(patient("p1"), "file 1, line 1")], "2025-06-01T00:00:00Z"),
        PulledBatch(
            "Encounter",
            [
                item(encounter("e1", "p1"), "file 2, line 1"),
                RawItem("drop://share", "file 2, line 2", problem="not JSON"),
            ],
            "2025-06-02T00:00:00Z",
        ),
    ]


async def run(
    engine: Engine, pack: RulePack, connector: DropFolder, full: bool = False
) -> SyncSummary:
    async with httpx.AsyncClient() as client:
        sync = SyncRun(engine, pack, Settings(), SOURCE, client, SyncListener())
        return await ConnectedSync(sync, connector).run(full)


async def test_a_connector_only_pulls_the_runner_stores_quarantines_and_maps(
    engine: Engine, pack: RulePack
) -> None:
    connector = DropFolder(batches())
    summary = await run(engine, pack, connector)
    assert connector.asked_from == [{"Patient": None, "Encounter": None}]
    assert not summary.failed
    with engine.connect() as conn:
        assert load_checkpoint(conn, "drop", "Encounter") == "2025-06-02T00:00:00Z"
        [person] = queries.list_people(conn, 10)
        journey = queries.journey(conn, person["id"], 10)
        [problem] = quarantine_entries(conn, 10)
        runs = {state["resource_type"]: state for state in states(conn)}
    assert [record["source"]["resource_id"] for record in journey] == ["e1"]
    assert problem["location"] == "file 2, line 2"
    assert runs["Encounter"]["last_counts"]["new"] == 1
    assert summary.stored is not None
    assert summary.stored.total("quarantined") == 1
    again = DropFolder([])
    await run(engine, pack, again)
    assert again.asked_from == [
        {"Patient": "2025-06-01T00:00:00Z", "Encounter": "2025-06-02T00:00:00Z"}
    ]


async def test_a_pull_that_fails_midway_keeps_what_it_stored_and_says_why(
    engine: Engine, pack: RulePack
) -> None:
    summary = await run(engine, pack, DropFolder(batches(), fail_after=1))
    assert summary.error == "drop folder: the share went away"
    with engine.connect() as conn:
        assert load_checkpoint(conn, "drop", "Patient") == "2025-06-01T00:00:00Z"
        assert load_checkpoint(conn, "drop", "Encounter") is None
        assert len(queries.list_people(conn, 10)) == 1
        runs = {state["resource_type"]: state for state in states(conn)}
    assert runs["Encounter"]["last_error"] == "drop folder: the share went away"


async def test_one_registry_line_makes_a_mode_of_it(
    engine: Engine, pack: RulePack, monkeypatch: pytest.MonkeyPatch
) -> None:
    connector = DropFolder(batches())
    # SourceConfig.mode names the modes a config may use; the test borrows "rest".
    monkeypatch.setitem(
        MODES,
        "rest",
        Mode(
            build=lambda r: ConnectedSync(r, connector),
            units=lambda source: tuple(source.resource_types),
            narrow=runners._one_type,
        ),
    )
    summary = await sync_source(engine, pack, Settings(), SOURCE)
    assert summary.stored is not None
    assert summary.stored.by_type["Patient"].new == 1
    assert connector.asked_from
