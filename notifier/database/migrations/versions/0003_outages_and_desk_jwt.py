"""notifier_outages (deliveries refused while the database failed), and
notifier_subscriptions.desk_jwt_required (an X-ZDesk-JWT once seen is always required)

Revision ID: n0003_outages
Revises: n0002
"""

import sqlalchemy as sa
from alembic import op

from notifier.database.models import CursorType
from servicekit.database import UTCDateTime

revision = "n0003_outages"
down_revision = "n0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "notifier_outages",
        sa.Column("id", CursorType, primary_key=True, autoincrement=True),
        sa.Column("replica", sa.String(64), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("ended_at", UTCDateTime(), nullable=False),
        sa.Column("refused", sa.Integer, nullable=False),
        sa.Column("announced_at", UTCDateTime()),
    )
    with op.batch_alter_table("notifier_subscriptions") as batch:
        batch.add_column(
            sa.Column("desk_jwt_required", sa.Boolean, nullable=False,
                      server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("notifier_subscriptions") as batch:
        batch.drop_column("desk_jwt_required")
    op.drop_table("notifier_outages")
