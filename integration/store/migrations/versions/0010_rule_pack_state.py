"""The active rule pack is a property of the store, not of each process.

Revision ID: 0010
Revises: 0009
"""

from alembic import op
from sqlalchemy import Column, Integer, String, Text

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rule_pack_state",
        Column("id", Integer, primary_key=True),
        Column("label", String(120), nullable=False),
        Column("origin", Text, nullable=False),
        Column("content", Text),
        Column("set_at", String(40), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("rule_pack_state")
