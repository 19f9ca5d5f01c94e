"""The web UI's signed-in sessions.

Revision ID: 0018
Revises: 0017
"""

from alembic import op
from sqlalchemy import Column, Index, String, Text

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ui_sessions",
        Column("id_digest", String(64), primary_key=True),
        Column("principal", Text, nullable=False),
        Column("key_digest", String(64)),
        Column("csrf", String(64), nullable=False),
        Column("created_at", String(40), nullable=False),
        Column("expires_at", String(40), nullable=False),
        Index("ix_ui_sessions_expires", "expires_at"),
    )


def downgrade() -> None:
    op.drop_table("ui_sessions")
