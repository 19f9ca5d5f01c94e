"""Identity by verdicts on pairs: trusted identifiers confirmed by demographics, a
review queue, and survivorship of the displayed name and birth date.

Every Patient is put back on the derivation queue: under the new rules, people
that one shared identifier merged whatever the system, sender or demographics are
linked again (and separated where nothing trusted joins them).

Revision ID: 0011
Revises: 0010
"""

from alembic import op
from sqlalchemy import BigInteger, Column, Float, Index, Integer, String, Text, column, table, true

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "patient_matches",
        Column("a_source", String(200), primary_key=True),
        Column("a_patient", String(64), primary_key=True),
        Column("b_source", String(200), primary_key=True),
        Column("b_patient", String(64), primary_key=True),
        Column("outcome", String(20), nullable=False),
        Column("rule", String(200), nullable=False),
        Column("reason", Text, nullable=False),
        Column("score", Float),
        Column("fields", Text, nullable=False),
        Column("decided_by", String(200), nullable=False),
        Column("decided_at", String(40), nullable=False),
        Index("ix_patient_matches_b", "b_source", "b_patient"),
        Index("ix_patient_matches_outcome", "outcome"),
    )
    op.create_table(
        "patient_demographics",
        Column("source", String(200), primary_key=True),
        Column("patient_id", String(64), primary_key=True),
        Column("family", String(200), nullable=False),
        Column("given", String(200), nullable=False),
        Column("birth_date", String(10), nullable=False),
        Column("gender", String(20), nullable=False),
        Column("line", Text, nullable=False),
        Column("postcode", String(20), nullable=False),
        Column("city", String(200), nullable=False),
        Column("phone", String(20), nullable=False),
        Column("email", String(320), nullable=False),
        Index("ix_patient_demographics_family", "family"),
        Index("ix_patient_demographics_given", "given"),
    )
    op.create_table(
        "patient_blocking_keys",
        Column("key", String(300), primary_key=True),
        Column("source", String(200), primary_key=True),
        Column("patient_id", String(64), primary_key=True),
        Index("ix_patient_blocking_keys_patient", "source", "patient_id"),
    )
    op.create_table(
        "name_counts",
        Column("field", String(10), primary_key=True),
        Column("value", String(200), primary_key=True),
        Column("count", BigInteger, nullable=False),
    )
    op.create_table(
        "store_counters",
        Column("name", String(64), primary_key=True),
        Column("value", BigInteger, nullable=False),
    )
    op.create_table(
        "patient_match_history",
        Column(
            "id",
            BigInteger().with_variant(Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        Column("a_source", String(200), nullable=False),
        Column("a_patient", String(64), nullable=False),
        Column("b_source", String(200), nullable=False),
        Column("b_patient", String(64), nullable=False),
        Column("outcome", String(20), nullable=False),
        Column("rule", String(200), nullable=False),
        Column("reason", Text, nullable=False),
        Column("decided_by", String(200), nullable=False),
        Column("decided_at", String(40), nullable=False),
        Index("ix_patient_match_history_a", "a_source", "a_patient"),
        Index("ix_patient_match_history_b", "b_source", "b_patient"),
    )
    with op.batch_alter_table("people") as batch:
        batch.add_column(Column("display_name", Text))
        batch.add_column(Column("birth_date", String(10)))
    with op.batch_alter_table("person_links") as batch:
        batch.add_column(Column("updated_at", String(40)))
    with op.batch_alter_table("job_records") as batch:
        batch.add_column(Column("event_of", String(32)))
        batch.add_column(Column("joined", Text, nullable=False, server_default="[]"))
    current = table("current_resources", column("resource_type", String), column("needs_derive"))
    op.execute(
        current.update().where(current.c.resource_type == "Patient").values(needs_derive=true())
    )


def downgrade() -> None:
    with op.batch_alter_table("job_records") as batch:
        batch.drop_column("joined")
        batch.drop_column("event_of")
    with op.batch_alter_table("person_links") as batch:
        batch.drop_column("updated_at")
    with op.batch_alter_table("people") as batch:
        batch.drop_column("birth_date")
        batch.drop_column("display_name")
    op.drop_table("patient_match_history")
    op.drop_table("store_counters")
    op.drop_table("name_counts")
    op.drop_table("patient_blocking_keys")
    op.drop_table("patient_demographics")
    op.drop_table("patient_matches")
