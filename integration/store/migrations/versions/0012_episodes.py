"""Episodes: each person's records grouped by concern, kept for the cohort measures.

`episodes` holds each person's episodes as `mappings.episodes.episode_json` writes
them; `episodes_stale` names the people whose records or Patients changed since
(filled as the journey is derived, emptied by the refresh at the end of each
journey update). Every person starts stale, so the first update fills the table.

Revision ID: 0012
Revises: 0011
"""

from alembic import op
from sqlalchemy import Column, Index, String, Text, column, select, table

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "episodes",
        Column("id", String(32), primary_key=True),
        Column("person_id", String(36), nullable=False),
        Column("concern", String(120), nullable=False),
        # '' when no record of the episode carries a time.
        Column("start", String(40), nullable=False),
        Column("pack_version", String(80), nullable=False),
        # The episode whole (mappings.episodes.episode_json), and what the cohort
        # measures read of it (mappings.outcomes.cohort_facts).
        Column("body", Text, nullable=False),
        Column("facts", Text, nullable=False),
        Column("computed_at", String(40), nullable=False),
        Index("ix_episodes_person", "person_id"),
        Index("ix_episodes_concern_start", "concern", "start"),
    )
    op.create_table(
        "episodes_stale",
        Column("person_id", String(36), primary_key=True),
    )
    people = table("people", column("id", String), column("merged_into", String))
    stale = table("episodes_stale", column("person_id", String))
    op.execute(
        stale.insert().from_select(
            ["person_id"], select(people.c.id).where(people.c.merged_into.is_(None))
        )
    )


def downgrade() -> None:
    op.drop_table("episodes_stale")
    op.drop_table("episodes")
