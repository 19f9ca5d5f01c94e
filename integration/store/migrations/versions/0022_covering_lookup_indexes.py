"""Lookups by a link's target and by a replacement's survivor answered from their
own index alone.

The target index (source, to_type, to_id) left `from_type` and `from_id` in the
table, and the survivor index (source, replaced_by) `patient_id`, so SQLite, with no
statistics, preferred each table's primary key, which covers the lookup, on `source`
alone: every link (every replacement) of the source was read for each push (found by
EXPLAIN QUERY PLAN, tests/integration/test_push_plans.py). With those columns in the
index it covers the lookup and its equalities win.

Revision ID: 0022
Revises: 0021
"""

from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_resource_links_target", table_name="resource_links")
    op.create_index(
        "ix_resource_links_target",
        "resource_links",
        ["source", "to_type", "to_id", "from_type", "from_id"],
    )
    op.drop_index("ix_patient_replacements_survivor", table_name="patient_replacements")
    op.create_index(
        "ix_patient_replacements_survivor",
        "patient_replacements",
        ["source", "replaced_by", "patient_id"],
    )


def downgrade() -> None:
    op.drop_index("ix_patient_replacements_survivor", table_name="patient_replacements")
    op.create_index(
        "ix_patient_replacements_survivor", "patient_replacements", ["source", "replaced_by"]
    )
    op.drop_index("ix_resource_links_target", table_name="resource_links")
    op.create_index("ix_resource_links_target", "resource_links", ["source", "to_type", "to_id"])
