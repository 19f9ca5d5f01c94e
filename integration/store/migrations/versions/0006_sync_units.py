"""Sync work units that `journey worker` processes claim with leases, and store locks.

Revision ID: 0006
Revises: 0005
"""

from alembic import op
from sqlalchemy import Column, Integer, String, Text

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sync_units",
        Column("source", String(200), primary_key=True),
        Column("unit", String(64), primary_key=True),
        Column("next_run_at", String(40), nullable=False),
        Column("lease_owner", String(200)),
        Column("lease_until", String(40)),
        Column("attempts", Integer, nullable=False),
        Column("last_started_at", String(40)),
        Column("last_finished_at", String(40)),
        Column("last_error", Text),
    )
    op.create_index("ix_sync_units_due", "sync_units", ["next_run_at"])
    locks = op.create_table(
        "store_locks",
        Column("name", String(64), primary_key=True),
        Column("taken_at", String(40)),
    )
    op.bulk_insert(locks, [{"name": "derive", "taken_at": None}])


def downgrade() -> None:
    op.drop_table("store_locks")
    op.drop_index("ix_sync_units_due", "sync_units")
    op.drop_table("sync_units")
