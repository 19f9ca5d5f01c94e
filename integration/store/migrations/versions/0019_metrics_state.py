"""What /metrics reads that the store did not keep: when each sync last succeeded (a
failed run no longer hides it), and every failed delivery attempt per subscription
(`attempts` counts only the current run of failures).

Revision ID: 0019
Revises: 0018
"""

from alembic import op
from sqlalchemy import BigInteger, Column, String, text

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("sync_state", Column("last_succeeded", String(40)))
    # A run that ended without an error is the last success known so far.
    op.execute(
        text("UPDATE sync_state SET last_succeeded = last_finished WHERE last_error IS NULL")
    )
    op.add_column(
        "webhook_subscriptions",
        Column("failures", BigInteger, nullable=False, server_default="0"),
    )


def downgrade() -> None:
    op.drop_column("webhook_subscriptions", "failures")
    op.drop_column("sync_state", "last_succeeded")
