"""notifier_keeper_subscriptions, notifier_keeper_users: the keeper's schedule and leases

Revision ID: n0002
Revises: n0001
"""

import sqlalchemy as sa
from alembic import op

from servicekit.database import UTCDateTime

revision = "n0002"
down_revision = "n0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "notifier_keeper_subscriptions",
        sa.Column("subscription_id", sa.String(40), primary_key=True),
        sa.Column("user_id", sa.String(255), nullable=False),
        sa.Column("app_type", sa.String(8), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("renew_at", UTCDateTime()),
        sa.Column("lease_owner", sa.String(64)),
        sa.Column("lease_until", UTCDateTime()),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("verified_at", UTCDateTime()),
    )
    op.create_index(
        "ix_notifier_keeper_subscriptions_due", "notifier_keeper_subscriptions", ["renew_at"]
    )
    op.create_index(
        "ix_notifier_keeper_subscriptions_user",
        "notifier_keeper_subscriptions",
        ["user_id", "app_type"],
    )
    op.create_table(
        "notifier_keeper_users",
        sa.Column("user_id", sa.String(255), primary_key=True),
        sa.Column("app_type", sa.String(8), primary_key=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("reconcile_at", UTCDateTime(), nullable=False),
        sa.Column("lease_owner", sa.String(64)),
        sa.Column("lease_until", UTCDateTime()),
        sa.Column("blocked", sa.String(32)),
    )
    op.create_index("ix_notifier_keeper_users_due", "notifier_keeper_users", ["reconcile_at"])


def downgrade() -> None:
    op.drop_table("notifier_keeper_users")
    op.drop_table("notifier_keeper_subscriptions")
