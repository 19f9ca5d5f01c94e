"""The runner for any `connectors.protocol.Connector`: store each batch with its
checkpoint, update the journey as batches arrive, record the run per stream.

A new kind of source needs only its connector (which pulls and says where to
resume) and a line in `integration.sync.runners.MODES`; storing, quarantine,
checkpoints that never pass unstored data, journey rounds and the run's record
in `journey sources` come from here.
"""

from __future__ import annotations

import asyncio
import time

from sqlalchemy import Connection

from connectors.errors import ConnectorError
from connectors.protocol import Connector, PulledBatch
from integration.clock import utc_now
from integration.ingest.pipeline import IngestSummary
from integration.ingest.policy import WayIn, ingest_pipeline
from integration.journey.update import JourneyUpdate, update_journey
from integration.store.sync_state import load_checkpoint, record_run, save_checkpoint
from integration.sync.context import SyncRun
from integration.sync.summary import SyncSummary, TypeSync, type_counts


class ConnectedSync:
    """One run of one source through its connector."""

    def __init__(self, run: SyncRun, connector: Connector) -> None:
        self.run_of = run
        self.connector = connector
        self.source = run.source
        self.pipeline = ingest_pipeline(
            run.engine,
            run.pack,
            run.settings,
            run.source.name,
            WayIn.PAGES,
            run.source.validate_resources,
        )
        self._stored_since_update = 0

    async def run(self, full: bool = False) -> SyncSummary:
        started_at, started = utc_now(), time.perf_counter()
        stored = IngestSummary(self.source.name)
        summary = SyncSummary(self.source.name, stored=stored)
        streams = list(self.source.resource_types)
        for stream in streams:
            summary.types[stream] = TypeSync(stream)
        with self.run_of.engine.connect() as conn:
            checkpoints = {
                stream: None if full else load_checkpoint(conn, self.source.name, stream)
                for stream in streams
            }
        for stream, checkpoint in checkpoints.items():
            summary.types[stream].checkpoint = checkpoint
            summary.types[stream].full = checkpoint is None
        try:
            async for batch in self.connector.pull(checkpoints):
                await asyncio.to_thread(self._store, batch, summary)
        except ConnectorError as exc:
            summary.error = str(exc)
        summary.derive.add(await asyncio.to_thread(self._update_journey))
        summary.seconds = time.perf_counter() - started
        await asyncio.to_thread(self._record, summary, started_at)
        return summary

    def _store(self, batch: PulledBatch, summary: SyncSummary) -> None:
        assert summary.stored is not None
        state = summary.types.setdefault(batch.stream, TypeSync(batch.stream))
        taken = [self.pipeline.intake(item, summary.stored) for item in batch.items]

        def save_with_batch(conn: Connection) -> None:
            if batch.checkpoint is not None:
                state.checkpoint = save_checkpoint(
                    conn, self.source.name, batch.stream, batch.checkpoint
                )

        self.pipeline.write(taken, summary.stored, also=save_with_batch)
        state.pages += 1
        state.fetched += len(batch.items)
        self.run_of.listener.on_step(batch.stream, f"{state.fetched} resources")
        self._stored_since_update += len(batch.items)
        if self._stored_since_update >= self.run_of.settings.batch_size:
            summary.derive.add(self._update_journey())

    def _update_journey(self) -> JourneyUpdate:
        self._stored_since_update = 0
        run = self.run_of
        return update_journey(run.engine, run.pack, run.settings.batch_size)

    def _record(self, summary: SyncSummary, started: str) -> None:
        assert summary.stored is not None
        finished = utc_now()
        with self.run_of.engine.begin() as conn:
            for stream, state in summary.types.items():
                record_run(
                    conn,
                    self.source.name,
                    stream,
                    started,
                    finished,
                    state.error or summary.error,
                    type_counts(state, summary.stored),
                )
