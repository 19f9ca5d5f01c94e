"""The Bulk Data export a source is in the middle of, so a killed sync resumes it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import Connection, Row, delete, select, update

from integration.store.schema import bulk_exports


@dataclass(slots=True)
class ExportInProgress:
    source: str
    status_url: str
    kicked_off_at: str
    since: str | None
    transaction_time: str | None = None
    files_done: list[str] = field(default_factory=list)


def load_export(conn: Connection, source: str) -> ExportInProgress | None:
    return exports_in_progress(conn, source).get(source)


def exports_in_progress(conn: Connection, source: str | None = None) -> dict[str, ExportInProgress]:
    """Exports kicked off and not finished, by source (one source, or all)."""
    query = select(bulk_exports)
    if source is not None:
        query = query.where(bulk_exports.c.source == source)
    return {row.source: _export(row) for row in conn.execute(query)}


def _export(row: Row[Any]) -> ExportInProgress:
    return ExportInProgress(
        row.source,
        row.status_url,
        row.kicked_off_at,
        row.since,
        row.transaction_time,
        list(orjson.loads(row.files_done)),
    )


def start_export(conn: Connection, export: ExportInProgress) -> None:
    conn.execute(delete(bulk_exports).where(bulk_exports.c.source == export.source))
    conn.execute(
        bulk_exports.insert().values(
            source=export.source,
            status_url=export.status_url,
            kicked_off_at=export.kicked_off_at,
            since=export.since,
            transaction_time=export.transaction_time,
            files_done=orjson.dumps(export.files_done).decode(),
        )
    )


def save_progress(conn: Connection, export: ExportInProgress) -> None:
    conn.execute(
        update(bulk_exports)
        .where(bulk_exports.c.source == export.source)
        .values(
            transaction_time=export.transaction_time,
            files_done=orjson.dumps(export.files_done).decode(),
        )
    )


def finish_export(conn: Connection, source: str) -> None:
    conn.execute(delete(bulk_exports).where(bulk_exports.c.source == source))
