"""What every runner is built from and what it reports to."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import httpx
from sqlalchemy import Engine

from connectors.rest.search import SearchPage
from integration.config import Settings
from integration.sources import SourceConfig
from integration.sync.summary import SyncSummary
from mappings.rulepack import RulePack


def _ignore_page(_source: str, _resource_type: str, _page: SearchPage) -> None:
    pass


def _ignore_step(_what: str, _detail: str) -> None:
    pass


@dataclass(frozen=True, slots=True)
class SyncListener:
    """Who hears of a sync's progress: each search page, or each step of an export
    ("export" and the server's X-Progress, or a resource type and its files)."""

    on_page: Callable[[str, str, SearchPage], None] = field(default=_ignore_page)
    on_step: Callable[[str, str], None] = field(default=_ignore_step)


@dataclass(frozen=True, slots=True)
class SyncRun:
    """Everything a runner is built from."""

    engine: Engine
    pack: RulePack
    settings: Settings
    source: SourceConfig
    client: httpx.AsyncClient
    listener: SyncListener


class Runner(Protocol):
    async def run(self, full: bool = False) -> SyncSummary: ...
