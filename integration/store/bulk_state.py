"""The Bulk Data export a source is in the middle of, so a killed sync resumes it."""

from __future__ import annotations

from dataclasses import dataclass, field

import orjson
from sqlalchemy import Connection, delete, select, update

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
    row = conn.execute(select(bulk_exports).where(bulk_exports.c.source == source)).first()
    if row is None:
        return None
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
