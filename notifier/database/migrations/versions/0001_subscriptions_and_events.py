"""notifier_subscriptions, notifier_events, notifier_event_log_state

Revision ID: n0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

from notifier.database.models import CursorType
from servicekit.database import UTCDateTime

revision = "n0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "notifier_subscriptions",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("user_id", sa.String(255), nullable=False),
        sa.Column("app_type", sa.String(8), nullable=False),
        sa.Column("events", sa.Text, nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("zoho_id", sa.String(64)),
        sa.Column("secret_digest", sa.String(64), nullable=False),
        sa.Column("secret_sealed", sa.Text),
        sa.Column("desk_org_id", sa.String(32)),
        sa.Column("jwks_url", sa.String(500)),
        sa.Column("notify_on_related_action", sa.Boolean, nullable=False),
        sa.Column("return_affected_field_values", sa.Boolean, nullable=False),
        sa.Column("expires_at", UTCDateTime()),
        sa.Column("last_renewed_time", UTCDateTime()),
        sa.Column("last_event_time", UTCDateTime()),
        sa.Column("last_error", sa.String(500)),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("deleted_at", UTCDateTime()),
    )
    op.create_index("ix_notifier_subscriptions_user", "notifier_subscriptions", ["user_id", "id"])
    op.create_index(
        "ix_notifier_subscriptions_zoho", "notifier_subscriptions", ["app_type", "zoho_id"]
    )
    op.create_table(
        "notifier_events",
        sa.Column("cursor", CursorType, primary_key=True, autoincrement=True),
        sa.Column("dedupe_key", sa.String(64), nullable=False, unique=True),
        sa.Column("subscription_id", sa.String(40), nullable=False),
        sa.Column("user_id", sa.String(255), nullable=False),
        sa.Column("app_type", sa.Integer, nullable=False),
        sa.Column("received_at", UTCDateTime(), nullable=False),
        sa.Column("event", sa.LargeBinary, nullable=False),
        # AUTOINCREMENT: never reuse a pruned cursor, even when every row was pruned.
        sqlite_autoincrement=True,
    )
    op.create_index("ix_notifier_events_user_cursor", "notifier_events", ["user_id", "cursor"])
    op.create_index("ix_notifier_events_received", "notifier_events", ["received_at"])
    op.create_table(
        "notifier_event_log_state",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("pruned_through", sa.BigInteger, nullable=False),
    )
    op.execute("INSERT INTO notifier_event_log_state (id, pruned_through) VALUES (1, 0)")


def downgrade() -> None:
    op.drop_table("notifier_event_log_state")
    op.drop_table("notifier_events")
    op.drop_table("notifier_subscriptions")
