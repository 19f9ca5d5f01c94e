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
    # Kept in step with integration.store.quarantine.intake_key.
    digest = hashlib.sha256()
    if content:
        for part in ("intake", source, content, error if truncated else ""):
            digest.update(part.encode() + b"\x00")
    else:
        for part in ("intake-place", source, origin or "", location or "", error):
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
        ).order_by(quarantine.c.id.desc())
    ).all()
    seen: set[str] = set()
    for row in rows:  # newest first: the newest of entries sharing a key stays
        key = _key(
            row.source,
            row.content,
            row.origin,
            row.location,
            row.error,
            bool(row.content_truncated),
        )
        if key in seen:
            conn.execute(sa.delete(quarantine).where(quarantine.c.id == row.id))
            continue
        seen.add(key)
        conn.execute(
            sa.update(quarantine).where(quarantine.c.id == row.id).values(quarantine_key=key)
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
