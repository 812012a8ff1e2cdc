"""notifier_consumers, notifier_consumer_deliveries: server-held consumers and their
leased outstanding deliveries

Revision ID: n0004_consumers
Revises: n0003_outages
"""

import sqlalchemy as sa
from alembic import op

from servicekit.database import UTCDateTime

revision = "n0004_consumers"
down_revision = "n0003_outages"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "notifier_consumers",
        sa.Column("id", sa.String(63), primary_key=True),
        sa.Column("user_id", sa.String(255), nullable=False),
        sa.Column("app_type", sa.Integer, nullable=False),
        sa.Column("subscription_id", sa.String(40), nullable=False),
        sa.Column("ack_deadline_seconds", sa.Integer, nullable=False),
        sa.Column("read_through", sa.BigInteger, nullable=False),
        sa.Column("acked_until", sa.BigInteger),
        sa.Column("generation", sa.Integer, nullable=False),
        sa.Column("expired_count", sa.BigInteger, nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    op.create_table(
        "notifier_consumer_deliveries",
        sa.Column("consumer_id", sa.String(63), primary_key=True),
        sa.Column("cursor", sa.BigInteger, primary_key=True),
        sa.Column("generation", sa.Integer, nullable=False),
        sa.Column("record_key", sa.String(32), nullable=False),
        sa.Column("is_head", sa.Boolean, nullable=False),
        sa.Column("received_at", UTCDateTime(), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("holder", sa.String(64)),
        sa.Column("deadline", UTCDateTime()),
    )
    op.create_index(
        "ix_notifier_consumer_deliveries_record",
        "notifier_consumer_deliveries",
        ["consumer_id", "record_key", "cursor"],
    )


def downgrade() -> None:
    op.drop_table("notifier_consumer_deliveries")
    op.drop_table("notifier_consumers")
