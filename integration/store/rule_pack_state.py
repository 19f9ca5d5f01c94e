"""The store's record of its rule pack: which one, from where, and its text."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, select

from integration.store.schema import rule_pack_state
from integration.store.upsert import upsert_statement

BUNDLED = "bundled"
_ROW = 1


@dataclass(frozen=True, slots=True)
class StoredPack:
    label: str
    origin: str  # BUNDLED or the file it was read from
    content: str | None  # None for the bundled pack
    set_at: str


def read_stored_pack(conn: Connection) -> StoredPack | None:
    row = conn.execute(select(rule_pack_state).where(rule_pack_state.c.id == _ROW)).first()
    if row is None:
        return None
    return StoredPack(row.label, row.origin, row.content, row.set_at)


def write_stored_pack(conn: Connection, pack: StoredPack) -> None:
    values = {
        "label": pack.label,
        "origin": pack.origin,
        "content": pack.content,
        "set_at": pack.set_at,
    }
    # An upsert: two processes starting on a new store may both record the pack.
    statement = upsert_statement(conn, rule_pack_state, ["id"], list(values))
    conn.execute(statement.values(id=_ROW, **values))
