"""Populations: each member-scoped source's roster, and the client that created each
subscription (its population bounds what the subscription is sent).

Revision ID: 0017
Revises: 0016
"""

from alembic import op
from sqlalchemy import Column, String, Text

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "roster_members",
        Column("source", String(200), primary_key=True),
        Column("patient_id", String(64), primary_key=True),
    )
    op.add_column("webhook_subscriptions", Column("client_id", String(200)))
    op.add_column("webhook_subscriptions", Column("client_population", Text))


def downgrade() -> None:
    op.drop_column("webhook_subscriptions", "client_population")
    op.drop_column("webhook_subscriptions", "client_id")
    op.drop_table("roster_members")
