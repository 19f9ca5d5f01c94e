"""The store's side of /metrics: gauges and counters read from the store at each
scrape, so every API process (and the worker, which writes much of it) agrees on
them. Labels are source names, resource types, quarantine stages and subscription
ids: never a person, a resource id or a URL.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterator
from datetime import UTC, datetime

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from integration.store.errors import describe_store_error
from integration.store.metrics import ReceivedTally, StoreReadings, SyncReading, read_store

log = logging.getLogger(__name__)
SOURCE_TYPE = ["source", "resource_type"]
SUBSCRIPTION = ["subscription", "kind"]


class StoreCollector(Collector):
    """Reads the store when scraped. `engine` is called then (the app opens its store
    in its lifespan); `sources` are the configured sources, whose syncs are shown (as
    GET /sources shows them: a source taken out of the config has no lag to alert on)."""

    def __init__(self, engine: Callable[[], Engine], sources: Collection[str]) -> None:
        self._engine = engine
        self._sources = frozenset(sources)
        self._received = ReceivedTally()

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "journey_store_up", "1 when this scrape could read the store, else 0"
        )
        try:
            with self._engine().connect() as conn:
                readings = read_store(conn, self._received)
        except SQLAlchemyError as exc:
            # Still answer: this process's own metrics say something while the store is away.
            log.warning("metrics: store unavailable (%s)", describe_store_error(exc))
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from _resources(readings)
        yield from _syncs([s for s in readings.syncs if s.source in self._sources])
        yield from _backlog(readings)
        yield from _feeds(readings)


def _resources(readings: StoreReadings) -> Iterator[Metric]:
    received = CounterMetricFamily(
        "journey_resources_received",
        "Resource versions received and kept in the raw zone (a repeat of a version "
        "held is not counted again), by source and resource type",
        labels=SOURCE_TYPE,
    )
    for (source, kind), count in sorted(readings.received.items()):
        received.add_metric([source, kind], count)
    yield received
    stored = GaugeMetricFamily(
        "journey_resources_stored",
        "Resources held (each at its current version), by source and resource type",
        labels=SOURCE_TYPE,
    )
    for (source, kind), count in sorted(readings.stored.items()):
        stored.add_metric([source, kind], count)
    yield stored
    quarantined = GaugeMetricFamily(
        "journey_resources_quarantined",
        "Open quarantine entries by source, resource type ('unknown' when the input had "
        "none) and stage (intake: not stored; mapping: stored, mapping failed)",
        labels=[*SOURCE_TYPE, "stage"],
    )
    for (source, kind, stage), count in sorted(readings.quarantined.items()):
        quarantined.add_metric([source, kind, stage], count)
    yield quarantined


def _seconds(instant: str | None) -> float | None:
    """An ISO instant as Unix seconds; None when absent or unreadable (or without offset)."""
    if not instant:
        return None
    try:
        moment = datetime.fromisoformat(instant)
    except ValueError:
        return None
    return moment.timestamp() if moment.tzinfo is not None else None


def _syncs(syncs: list[SyncReading]) -> Iterator[Metric]:
    now = datetime.now(UTC).timestamp()
    succeeded = GaugeMetricFamily(
        "journey_sync_last_success_timestamp_seconds",
        "When a sync of the source's resource type (or its Bulk Data $export) last "
        "ended without an error",
        labels=SOURCE_TYPE,
    )
    lag = GaugeMetricFamily(
        "journey_sync_lag_seconds",
        "Seconds since that last successful sync: how stale the copy of the source may "
        "be (it grows while syncs fail)",
        labels=SOURCE_TYPE,
    )
    failed = GaugeMetricFamily(
        "journey_sync_last_run_failed",
        "1 when the last sync of the source's resource type ended with an error",
        labels=SOURCE_TYPE,
    )
    checkpoint = GaugeMetricFamily(
        "journey_sync_checkpoint_timestamp_seconds",
        "The newest meta.lastUpdated stored from the source (in the source's clock)",
        labels=SOURCE_TYPE,
    )
    for sync in syncs:
        labels = [sync.source, sync.resource_type]
        if sync.last_finished is not None:
            failed.add_metric(labels, 1 if sync.last_failed else 0)
        last_success = _seconds(sync.last_succeeded)
        if last_success is not None:
            succeeded.add_metric(labels, last_success)
            lag.add_metric(labels, max(0.0, now - last_success))
        stored_until = _seconds(sync.checkpoint)
        if stored_until is not None:
            checkpoint.add_metric(labels, stored_until)
    yield from (succeeded, lag, failed, checkpoint)


def _backlog(readings: StoreReadings) -> Iterator[Metric]:
    backlog = GaugeMetricFamily(
        "journey_derivation_backlog",
        "Stored resources waiting to be mapped into journeys, by resource type",
        labels=["resource_type"],
    )
    for kind, count in sorted(readings.derivation_backlog.items()):
        backlog.add_metric([kind], count)
    yield backlog
    yield GaugeMetricFamily(
        "journey_episodes_backlog_people",
        "People whose kept episodes (what cohort measures read) wait to be recomputed",
        value=readings.episodes_backlog_people,
    )


def _feeds(readings: StoreReadings) -> Iterator[Metric]:
    delivered = CounterMetricFamily(
        "journey_feed_deliveries",
        "Feed events delivered to the endpoint, by subscription id and kind (webhook "
        "or FHIR Subscription)",
        labels=SUBSCRIPTION,
    )
    failures = CounterMetricFamily(
        "journey_feed_delivery_failures",
        "Failed delivery attempts (error status, no answer, no connection), by "
        "subscription id and kind",
        labels=SUBSCRIPTION,
    )
    dead = CounterMetricFamily(
        "journey_feed_dead_letters",
        "Events given up on after the endpoint failed for JOURNEY_WEBHOOK_GIVE_UP_HOURS",
        labels=SUBSCRIPTION,
    )
    failing = GaugeMetricFamily(
        "journey_feed_endpoint_failing",
        "1 while the endpoint's last attempt failed (retrying or dead-lettering)",
        labels=SUBSCRIPTION,
    )
    for feed in readings.feeds:
        labels = [feed.subscription, feed.kind]
        delivered.add_metric(labels, feed.delivered)
        failures.add_metric(labels, feed.failures)
        dead.add_metric(labels, feed.dead_lettered)
        failing.add_metric(labels, 1 if feed.failing else 0)
    yield from (delivered, failures, dead, failing)
