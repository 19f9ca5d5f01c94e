"""Sync state per (source, resource type): checkpoint and the last run's outcome.

Revision ID: 0002
Revises: 0001
"""

from alembic import op
from sqlalchemy import Column, String, Text

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sync_state",
        Column("source", String(200), primary_key=True),
        Column("resource_type", String(64), primary_key=True),
        Column("checkpoint", String(40)),
        Column("last_started", String(40)),
        Column("last_finished", String(40)),
        Column("last_error", Text),
        Column("last_counts", Text),
    )


def downgrade() -> None:
    op.drop_table("sync_state")
