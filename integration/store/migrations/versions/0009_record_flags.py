"""Job records carry flags, an excluded mark, a band, the instrument version and every
scale's score (questionnaire safety and instruments as data).

Revision ID: 0009
Revises: 0008
"""

from alembic import op
from sqlalchemy import Boolean, Column, String, Text, false

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("job_records") as table:
        table.add_column(Column("flags", Text, nullable=False, server_default="[]"))
        table.add_column(Column("excluded", Boolean, nullable=False, server_default=false()))
        table.add_column(Column("band", String(40)))
        table.add_column(Column("instrument_version", String(80)))
        table.add_column(Column("scores", Text, nullable=False, server_default="[]"))


def downgrade() -> None:
    with op.batch_alter_table("job_records") as table:
        for name in ("scores", "instrument_version", "band", "excluded", "flags"):
            table.drop_column(name)
