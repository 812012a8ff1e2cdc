"""Change capture: watermarks and read-back leases, the credit ledger, and the event
columns a read-back is deduplicated against (notifier/capture/)

Revision ID: n0005_capture
Revises: n0004_consumers
"""

import sqlalchemy as sa
from alembic import op

from servicekit.database import UTCDateTime

revision = "n0005_capture"
down_revision = "n0004_consumers"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "notifier_capture_cursors",
        sa.Column("subscription_id", sa.String(40), primary_key=True),
        sa.Column("module", sa.String(100), primary_key=True),
        sa.Column("user_id", sa.String(255), nullable=False),
        sa.Column("app_type", sa.String(8), nullable=False),
        sa.Column("covered_until", UTCDateTime(), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("read_at", UTCDateTime(), nullable=False),
        sa.Column("lease_owner", sa.String(64)),
        sa.Column("lease_until", UTCDateTime()),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("failing_reason", sa.String(40)),
        sa.Column("gap_announced", sa.Boolean, nullable=False),
        sa.Column("cause", sa.String(16), nullable=False),
    )
    op.create_index(
        "ix_notifier_capture_cursors_due", "notifier_capture_cursors", ["read_at"]
    )
    op.create_table(
        "notifier_capture_orgs",
        sa.Column("org_key", sa.String(300), primary_key=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("zoho_remaining", sa.BigInteger),
        sa.Column("zoho_remaining_at", UTCDateTime()),
    )
    op.create_table(
        "notifier_capture_credits",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("org_key", sa.String(300), nullable=False),
        sa.Column("spent_at", UTCDateTime(), nullable=False),
        sa.Column("credits", sa.Integer, nullable=False),
    )
    op.create_index(
        "ix_notifier_capture_credits_org", "notifier_capture_credits", ["org_key", "spent_at"]
    )
    op.add_column("notifier_subscriptions", sa.Column("covered_until", UTCDateTime()))
    # Plain ADD COLUMNs (no table rebuild on SQLite, which would drop AUTOINCREMENT).
    op.add_column("notifier_events", sa.Column("record_id", sa.String(64)))
    op.add_column("notifier_events", sa.Column("change_kind", sa.String(1)))
    op.add_column("notifier_events", sa.Column("change_time", UTCDateTime()))
    op.add_column("notifier_events", sa.Column("origin", sa.Integer))
    op.create_index(
        "ix_notifier_events_record", "notifier_events", ["subscription_id", "record_id"]
    )


def downgrade() -> None:
    op.drop_index("ix_notifier_events_record", "notifier_events")
    with op.batch_alter_table("notifier_events") as batch:
        batch.drop_column("origin")
        batch.drop_column("change_time")
        batch.drop_column("change_kind")
        batch.drop_column("record_id")
    op.drop_column("notifier_subscriptions", "covered_until")
    op.drop_table("notifier_capture_credits")
    op.drop_table("notifier_capture_orgs")
    op.drop_table("notifier_capture_cursors")
