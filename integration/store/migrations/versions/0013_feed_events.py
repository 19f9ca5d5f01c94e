"""The journey feed's change log: one row per change to people, records and episodes,
written in the transaction of the change, in commit order (every writer holds the
derive lock, so a later sequence number is never committed before an earlier one).

Revision ID: 0013
Revises: 0012
"""

from alembic import op
from sqlalchemy import BigInteger, Column, Index, Integer, String, Text

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "feed_events",
        Column(
            "seq",
            BigInteger().with_variant(Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        Column("type", String(40), nullable=False),
        Column("subject", String(64), nullable=False),
        Column("person_id", String(36)),
        Column("version", String(80)),
        Column("occurred_at", String(40), nullable=False),
        Column("payload", Text),
        Index("ix_feed_events_person", "person_id", "seq"),
        Index("ix_feed_events_occurred", "occurred_at"),
    )


def downgrade() -> None:
    op.drop_table("feed_events")
