"""The quarantine grows up: mapping failures beside rejected input, entries keyed by
content (the place is information), and closing an entry with a reason.

- `stage`: `intake` (could not be stored as a resource) or `mapping` (stored, but
  deriving its journey failed; the resource's own record says so).
- `resolution`: `fixed` (the input later stored or mapped fine, or left the file),
  `dismissed` or `resolved` (an operator's decision), with `resolution_note` and
  `resolved_by`. `resolved_at` keeps its meaning: when the entry was closed.
- `last_seen_at`: the last time the same content was rejected again.
- `quarantine_key` becomes a hash of the source and the content, so the same bad
  line moved elsewhere in a file is the same entry; existing keys are recomputed
  and entries that now share a key are folded into the newest.

Revision ID: 0008
Revises: 0007
"""

import hashlib
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def _key(
    source: str,
    content: str | None,
    origin: str | None,
    location: str | None,
    error: str,
    truncated: bool,
) -> str:
    # Kept in step with integration.store.quarantine.intake_key: an origin that is not a
    # URL (a sync page, a Bulk file) is a file read whole by `journey import`.
    in_file = origin is not None and "://" not in origin
    digest = hashlib.sha256()
    if content:
        file = (origin or "") if in_file else ""
        parts = ("intake", source, file, content, error if truncated else "")
    else:
        parts = ("intake-place", source, origin or "", location or "", error)
    for part in parts:
        digest.update(part.encode() + b"\x00")
    return digest.hexdigest()


def upgrade() -> None:
    with op.batch_alter_table("quarantine") as batch:
        batch.add_column(sa.Column("stage", sa.String(16), nullable=False, server_default="intake"))
        batch.add_column(sa.Column("resolution", sa.String(16)))
        batch.add_column(sa.Column("resolution_note", sa.Text))
        batch.add_column(sa.Column("resolved_by", sa.String(200)))
        batch.add_column(sa.Column("last_seen_at", sa.String(40)))
    op.create_index("ix_quarantine_open", "quarantine", ["resolved_at", "stage", "source"])
    conn = op.get_bind()
    quarantine = sa.table(
        "quarantine",
        sa.column("id", sa.BigInteger),
        sa.column("quarantine_key", sa.String),
        sa.column("source", sa.String),
        sa.column("origin", sa.Text),
        sa.column("location", sa.String),
        sa.column("error", sa.Text),
        sa.column("content", sa.Text),
        sa.column("content_truncated", sa.Boolean),
        sa.column("received_at", sa.String),
        sa.column("last_seen_at", sa.String),
        sa.column("resolved_at", sa.String),
        sa.column("resolution", sa.String),
    )
    rows = conn.execute(
        sa.select(
            quarantine.c.id,
            quarantine.c.source,
            quarantine.c.origin,
            quarantine.c.location,
            quarantine.c.error,
            quarantine.c.content,
            quarantine.c.content_truncated,
            quarantine.c.received_at,
            quarantine.c.resolved_at,
        ).order_by(quarantine.c.id.desc())
    ).all()
    groups: dict[str, list[Any]] = {}
    for row in rows:  # newest first
        key = _key(
            row.source,
            row.content,
            row.origin,
            row.location,
            row.error,
            bool(row.content_truncated),
        )
        groups.setdefault(key, []).append(row)
    for key, group in groups.items():
        # The newest row stays, carrying the group's story: open if any row was open,
        # first received by the oldest, last seen by the newest.
        newest, older = group[0], group[1:]
        still_open = any(row.resolved_at is None for row in group)
        if older:
            conn.execute(sa.delete(quarantine).where(quarantine.c.id.in_([r.id for r in older])))
        conn.execute(
            sa.update(quarantine)
            .where(quarantine.c.id == newest.id)
            .values(
                quarantine_key=key,
                received_at=min(str(row.received_at) for row in group),
                last_seen_at=newest.received_at,
                resolved_at=None if still_open else newest.resolved_at,
            )
        )
    conn.execute(
        sa.update(quarantine)
        .where(quarantine.c.resolved_at.is_not(None))
        .values(resolution="fixed")
    )


def downgrade() -> None:
    op.drop_index("ix_quarantine_open", "quarantine")
    with op.batch_alter_table("quarantine") as batch:
        for column in ("last_seen_at", "resolved_by", "resolution_note", "resolution", "stage"):
            batch.drop_column(column)
