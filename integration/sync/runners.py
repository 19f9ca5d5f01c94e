"""Which runner syncs a source: one registry entry per `mode`.

`journey sync`, `POST /sources/{name}/sync` and `journey worker` all start a
sync through `sync_source`, and learn from the same entry which lease units a
source's sync is divided into. A new connector is one module with a runner
(something with `async run(full) -> SyncSummary`) and one line in `MODES`
(and its name among `SourceConfig.mode`'s values).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import httpx
from sqlalchemy import Engine

from integration.config import Settings
from integration.sources import SourceConfig
from integration.sync.bulk import EXPORT_STATE, BulkSync
from integration.sync.context import Runner, SyncListener, SyncRun
from integration.sync.rest import RestSync
from integration.sync.summary import SyncSummary
from mappings.rulepack import RulePack


@dataclass(frozen=True, slots=True)
class Mode:
    build: Callable[[SyncRun], Runner]
    # The lease units a source's sync is divided into; `narrow` gives the source
    # a worker syncs when it holds one of them.
    units: Callable[[SourceConfig], tuple[str, ...]]
    narrow: Callable[[SourceConfig, str], SourceConfig]


def _one_type(source: SourceConfig, unit: str) -> SourceConfig:
    return source.model_copy(update={"resource_types": (unit,)})


MODES: dict[str, Mode] = {
    "rest": Mode(
        build=RestSync,
        units=lambda source: tuple(source.resource_types),
        narrow=_one_type,
    ),
    "bulk": Mode(
        build=BulkSync,
        units=lambda _source: (EXPORT_STATE,),
        narrow=lambda source, _unit: source,
    ),
}


def mode_of(source: SourceConfig) -> Mode:
    return MODES[source.mode]


async def sync_source(
    engine: Engine,
    pack: RulePack,
    settings: Settings,
    source: SourceConfig,
    full: bool = False,
    client: httpx.AsyncClient | None = None,
    listener: SyncListener | None = None,
) -> SyncSummary:
    """Run one sync of `source` (no lease: see `integration.sync.leased`). Pass a
    client to control transport (tests, proxies)."""
    listener = listener or SyncListener()
    auth = source.build_auth(settings.config_file)
    if client is not None:
        if auth is not None:
            client.auth = auth
        run = SyncRun(engine, pack, settings, source, client, listener)
        return await mode_of(source).build(run).run(full)
    timeout = httpx.Timeout(30.0, connect=10.0)
    async with httpx.AsyncClient(auth=auth, timeout=timeout, follow_redirects=True) as owned:
        run = SyncRun(engine, pack, settings, source, owned, listener)
        return await mode_of(source).build(run).run(full)
