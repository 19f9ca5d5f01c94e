"""A source's own merges (Patient.link replaced-by / replaces) and the members who
left a roster whose source retires leavers from the journey.

Self-contained: two new tables, empty.

Revision ID: 0021
Revises: 0020
"""

from alembic import op
from sqlalchemy import Column, String

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "patient_replacements",
        Column("source", String(200), primary_key=True),
        Column("patient_id", String(64), primary_key=True),
        Column("replaced_by", String(64), primary_key=True),
        Column("declared_by", String(64), primary_key=True),
    )
    op.create_index(
        "ix_patient_replacements_survivor", "patient_replacements", ["source", "replaced_by"]
    )
    op.create_index(
        "ix_patient_replacements_declared", "patient_replacements", ["source", "declared_by"]
    )
    op.create_table(
        "roster_departures",
        Column("source", String(200), primary_key=True),
        Column("patient_id", String(64), primary_key=True),
        Column("left_at", String(40), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("roster_departures")
    op.drop_index("ix_patient_replacements_declared", "patient_replacements")
    op.drop_index("ix_patient_replacements_survivor", "patient_replacements")
    op.drop_table("patient_replacements")
