"""The audit trail: every read and write of patient data (who, which client, which
person, what action and query, when, outcome).

Revision ID: 0015
Revises: 0014
"""

from alembic import op
from sqlalchemy import BigInteger, Column, Index, Integer, String, Text

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

RowId = BigInteger().with_variant(Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "audit_events",
        Column("id", RowId, primary_key=True, autoincrement=True),
        Column("recorded", String(40), nullable=False),
        Column("action", String(1), nullable=False),
        Column("subtype", String(40), nullable=False),
        Column("outcome", String(2), nullable=False),
        Column("client", String(200), nullable=False),
        Column("address", String(64)),
        Column("person_id", String(64)),
        Column("method", String(10)),
        Column("path", Text),
        Column("query", Text),
        Column("status", Integer),
        Column("request_id", String(64)),
        Index("ix_audit_events_person", "person_id", "recorded"),
        Index("ix_audit_events_recorded", "recorded"),
    )


def downgrade() -> None:
    op.drop_table("audit_events")
