"""zoho_connections and zoho_refresh_audit

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

from broker.storage.tables import UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "zoho_connections",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("user_id", sa.String(255), nullable=False, unique=True),
        sa.Column("access_token", sa.Text),
        sa.Column("refresh_token", sa.Text, nullable=False),
        sa.Column("refresh_token_hash", sa.String(16), nullable=False),
        sa.Column("token_expires_at", UTCDateTime()),
        sa.Column("api_domain", sa.String(255), nullable=False),
        sa.Column("accounts_server", sa.String(255), nullable=False),
        sa.Column("scopes", sa.Text, nullable=False, server_default=""),
        sa.Column("status", sa.String(32), nullable=False, server_default="active"),
        sa.Column("desk_org_id", sa.String(64)),
        sa.Column("last_refresh_time", UTCDateTime()),
        sa.Column("last_error", sa.String(500)),
        sa.Column("refresh_failures", sa.Integer, nullable=False, server_default="0"),
        sa.Column("version", sa.Integer, nullable=False, server_default="1"),
        sa.Column("lease_owner", sa.String(64)),
        sa.Column("lease_expires_at", UTCDateTime()),
        sa.Column("throttled_until", UTCDateTime()),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )
    op.create_table(
        "zoho_refresh_audit",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("user_id", sa.String(255), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("outcome", sa.String(32), nullable=False),
        sa.Column("latency_ms", sa.Integer, nullable=False),
        sa.Column("refresh_token_hash", sa.String(16), nullable=False),
        sa.Column("access_token_hash", sa.String(16)),
        sa.Column("replica", sa.String(64), nullable=False),
        sa.Column("detail", sa.String(200)),
    )
    op.create_index(
        "ix_zoho_refresh_audit_rt_time", "zoho_refresh_audit", ["refresh_token_hash", "created_at"]
    )
    op.create_index(
        "ix_zoho_refresh_audit_user_time", "zoho_refresh_audit", ["user_id", "created_at"]
    )


def downgrade() -> None:
    op.drop_table("zoho_refresh_audit")
    op.drop_table("zoho_connections")
