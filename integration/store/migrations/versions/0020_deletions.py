"""Deletions travel through: a version that is a deletion (raw and current), job
records kept as tombstones with when and why they left the journey, people retired
when their last source Patient is deleted.

Self-contained: columns added to existing tables only, each with a default that
leaves every row as it was (nothing deleted, nothing retired).

Revision ID: 0020
Revises: 0019
"""

from alembic import op
from sqlalchemy import Boolean, Column, String, Text, false

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("raw_resources") as table:
        table.add_column(Column("deleted", Boolean, nullable=False, server_default=false()))
    with op.batch_alter_table("current_resources") as table:
        table.add_column(Column("deleted", Boolean, nullable=False, server_default=false()))
    with op.batch_alter_table("job_records") as table:
        table.add_column(Column("deleted_at", String(40)))
        table.add_column(Column("removed_reason", Text))
    with op.batch_alter_table("people") as table:
        table.add_column(Column("retired_at", String(40)))


def downgrade() -> None:
    with op.batch_alter_table("people") as table:
        table.drop_column("retired_at")
    with op.batch_alter_table("job_records") as table:
        table.drop_column("removed_reason")
        table.drop_column("deleted_at")
    with op.batch_alter_table("current_resources") as table:
        table.drop_column("deleted")
    with op.batch_alter_table("raw_resources") as table:
        table.drop_column("deleted")
