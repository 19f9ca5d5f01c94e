"""A store lock for pushes: a conditional create checks and writes under it.

Revision ID: 0007
Revises: 0006
"""

from alembic import op
from sqlalchemy import Column, MetaData, String, Table

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

store_locks = Table(
    "store_locks",
    MetaData(),
    Column("name", String(64), primary_key=True),
    Column("taken_at", String(40)),
)


def upgrade() -> None:
    op.bulk_insert(store_locks, [{"name": "push", "taken_at": None}])


def downgrade() -> None:
    op.execute(store_locks.delete().where(store_locks.c.name == "push"))
