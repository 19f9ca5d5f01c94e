"""Privacy directives read from FHIR Consent resources: whose data is withheld, from
which clients, and when.

Revision ID: 0016
Revises: 0015
"""

from alembic import op
from sqlalchemy import Boolean, Column, Index, String, Text

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "consent_directives",
        Column("source", String(200), primary_key=True),
        Column("consent_id", String(64), primary_key=True),
        Column("patient_id", String(64)),
        Column("withholds", Boolean, nullable=False),
        Column("recipients", Text),
        Column("period_start", String(40)),
        Column("period_end", String(40)),
        Column("updated_at", String(40), nullable=False),
        Index("ix_consent_directives_patient", "source", "patient_id"),
    )


def downgrade() -> None:
    op.drop_table("consent_directives")
