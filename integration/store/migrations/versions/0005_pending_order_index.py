"""Pending resources in the order derivation reads them, straight from an index.

The old index found pending rows but each batch still sorted all of them
(ORDER BY source, resource_id ... LIMIT), so derivation slowed as the backlog grew.

Revision ID: 0005
Revises: 0004
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_current_pending", table_name="current_resources")
    op.create_index(
        "ix_current_pending",
        "current_resources",
        ["needs_derive", "resource_type", "source", "resource_id"],
    )


def downgrade() -> None:
    op.drop_index("ix_current_pending", table_name="current_resources")
    op.create_index("ix_current_pending", "current_resources", ["needs_derive", "resource_type"])
