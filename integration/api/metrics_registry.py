"""What GET /metrics answers: one registry per app, holding the store's readings
(the same in every process), this process's request latency and its Python process
figures (memory, CPU, open files, garbage collection)."""

from __future__ import annotations

from collections.abc import Callable, Collection

from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector
from sqlalchemy import Engine

from integration.api.store_collector import StoreCollector


def metrics_registry(engine: Callable[[], Engine], sources: Collection[str]) -> CollectorRegistry:
    # An app's own registry, not the module-global one: every app built in one process
    # (the tests build many) counts only its own requests.
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    registry.register(StoreCollector(engine, sources))
    return registry
