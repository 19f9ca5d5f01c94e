"""A Bulk Data export in progress per source: its status URL and the files already stored.

Revision ID: 0004
Revises: 0003
"""

from alembic import op
from sqlalchemy import Column, String, Text

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "bulk_exports",
        Column("source", String(200), primary_key=True),
        Column("status_url", Text, nullable=False),
        Column("kicked_off_at", String(40), nullable=False),
        Column("since", String(40)),
        Column("transaction_time", String(40)),
        Column("files_done", Text, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("bulk_exports")
