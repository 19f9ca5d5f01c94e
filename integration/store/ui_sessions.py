"""The web UI's sessions as stored: by the SHA-256 of their cookie, never the cookie."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, delete, select

from integration.store.schema import ui_sessions

c = ui_sessions.c


def create(conn: Connection, row: dict[str, Any]) -> None:
    conn.execute(ui_sessions.insert(), [row])


def load(conn: Connection, id_digest: str, now: str) -> dict[str, Any] | None:
    found = conn.execute(
        select(ui_sessions).where(c.id_digest == id_digest, c.expires_at > now)
    ).first()
    return {str(k): v for k, v in found._mapping.items()} if found else None


def end(conn: Connection, id_digest: str) -> None:
    conn.execute(delete(ui_sessions).where(c.id_digest == id_digest))


def prune(conn: Connection, now: str) -> int:
    return conn.execute(delete(ui_sessions).where(c.expires_at <= now)).rowcount or 0
