"""Webhooks and FHIR Subscriptions: subscriptions (each endpoint's queue and how far it
has got), their dead letters and event numbers, and on each feed event the sources
and concern that filters select.

Events written before this migration carry neither: a filtered subscription does not
select them (the filter cannot tell), an unfiltered one does.

Revision ID: 0014
Revises: 0013
"""

from alembic import op
from sqlalchemy import BigInteger, Column, Index, Integer, String, Text

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

RowId = BigInteger().with_variant(Integer(), "sqlite")


def upgrade() -> None:
    op.add_column("feed_events", Column("sources", Text))
    op.add_column("feed_events", Column("concern", String(120)))
    op.create_table(
        "webhook_subscriptions",
        Column("id", String(64), primary_key=True),
        Column("url", Text, nullable=False),
        Column("description", Text),
        Column("types", Text, nullable=False),
        Column("sources", Text, nullable=False),
        Column("people", Text, nullable=False),
        Column("concerns", Text, nullable=False),
        Column("payload", String(8), nullable=False),
        Column("secret", Text, nullable=False),
        Column("previous_secret", Text),
        Column("previous_secret_until", String(40)),
        Column("managed_by", String(16), nullable=False),
        Column("created_at", String(40), nullable=False),
        Column("position", RowId, nullable=False),
        Column("attempts", Integer, nullable=False),
        Column("next_attempt_at", String(40)),
        Column("failing_since", String(40)),
        Column("last_error", Text),
        Column("last_delivered_at", String(40)),
        Column("delivered", BigInteger, nullable=False),
        Column("dead_lettered", BigInteger, nullable=False),
        Column("lease_owner", String(200)),
        Column("lease_until", String(40)),
        # FHIR R4 Subscriptions (Backport IG) delivered by the same queue: kind "fhir"
        # (else "webhook"), the Subscription's status and channel, and per-subscription
        # event numbers (events-since-subscription-start).
        Column("kind", String(16), nullable=False, server_default="webhook"),
        Column("fhir_status", String(16)),
        Column("fhir_content", String(16)),
        Column("fhir_headers", Text),
        Column("heartbeat_seconds", Integer),
        Column("last_sent_at", String(40)),
        Column("events_numbered", BigInteger, nullable=False, server_default="0"),
    )
    op.create_table(
        "subscription_event_numbers",
        Column("subscription_id", String(64), primary_key=True),
        Column("number", BigInteger, primary_key=True),
        Column("seq", RowId, nullable=False),
    )
    op.create_table(
        "webhook_dead_letters",
        Column("id", RowId, primary_key=True, autoincrement=True),
        Column("subscription_id", String(64), nullable=False),
        Column("seq", RowId, nullable=False),
        Column("event_type", String(40), nullable=False),
        Column("failing_since", String(40), nullable=False),
        Column("given_up_at", String(40), nullable=False),
        Column("attempts", Integer, nullable=False),
        Column("last_error", Text),
        Index("ix_webhook_dead_letters_subscription", "subscription_id", "id"),
    )


def downgrade() -> None:
    op.drop_table("webhook_dead_letters")
    op.drop_table("subscription_event_numbers")
    op.drop_table("webhook_subscriptions")
    op.drop_column("feed_events", "concern")
    op.drop_column("feed_events", "sources")
