"""Indexes of pushed resources: identifiers (conditional create, identifier search on
/fhir) and content hashes (a re-pushed create is recognised, not duplicated).

Revision ID: 0003
Revises: 0002
"""

from alembic import op
from sqlalchemy import Column, Index, String

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "resource_identifiers",
        Column("source", String(200), primary_key=True),
        Column("resource_type", String(64), primary_key=True),
        Column("system", String(400), primary_key=True),
        Column("value", String(200), primary_key=True),
        Column("resource_id", String(64), primary_key=True),
        Index("ix_resource_identifiers_resource", "source", "resource_type", "resource_id"),
    )
    op.create_table(
        "pushed_content",
        Column("source", String(200), primary_key=True),
        Column("resource_type", String(64), primary_key=True),
        Column("content_hash", String(64), primary_key=True),
        Column("resource_id", String(64), primary_key=True),
        Index("ix_pushed_content_resource", "source", "resource_type", "resource_id"),
    )


def downgrade() -> None:
    op.drop_table("pushed_content")
    op.drop_table("resource_identifiers")
