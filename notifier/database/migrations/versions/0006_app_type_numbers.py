"""app_type as the contract's AppType number in every notifier table: the subscriptions,
the keeper's two tables and change capture's cursors held the words "crm"/"desk", while
the event log and the consumers held the number (notifier/app_types.py says why the
number)

Not safe while an earlier release's notifier serves: it reads 1 as "not crm" (its ingress
refuses CRM deliveries, its keeper may take a CRM user for a Desk one). docs/operations.md
says how to upgrade across it.

Revision ID: n0006_app_type_numbers
Revises: n0005_capture
"""

import sqlalchemy as sa
from alembic import op

revision = "n0006_app_type_numbers"
down_revision = "n0005_capture"
branch_labels = None
depends_on = None

# The tables that held words. Per-subscription (or per-user) rows: small, so each is
# converted in one statement (on SQLite, one table rebuild).
TABLES = (
    "notifier_subscriptions",
    "notifier_keeper_subscriptions",
    "notifier_keeper_users",
    "notifier_capture_cursors",
)
# Written out rather than imported: a migration must not change when the code does.
# APP_TYPE_CRM = 1, APP_TYPE_DESK = 2 (SPEC). A word other than these makes the CASE
# NULL and the NOT NULL column refuses it: the upgrade stops rather than guess.
_TO_NUMBER = "CASE app_type WHEN 'crm' THEN 1 WHEN 'desk' THEN 2 END"
_TO_WORD = "CASE app_type WHEN 1 THEN 'crm' WHEN 2 THEN 'desk' END"
_DIGITS_TO_WORD = "CASE app_type WHEN '1' THEN 'crm' WHEN '2' THEN 'desk' END"


def _postgres() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def upgrade() -> None:
    for table in TABLES:
        if _postgres():
            # One rewrite per table; its indexes (and notifier_keeper_users' primary key)
            # are rebuilt with it.
            op.execute(
                f"ALTER TABLE {table} ALTER COLUMN app_type TYPE INTEGER USING {_TO_NUMBER}"
            )
            continue
        # SQLite keeps a column's declared type: an INTEGER column needs a rebuilt table
        # (batch copies the rows across, casting '1' to 1, and recreates the indexes).
        op.execute(f"UPDATE {table} SET app_type = {_TO_NUMBER}")  # noqa: S608  # TABLES
        with op.batch_alter_table(table, recreate="always") as batch:
            batch.alter_column(
                "app_type", existing_type=sa.String(8), type_=sa.Integer(),
                existing_nullable=False,
            )


def downgrade() -> None:
    for table in TABLES:
        if _postgres():
            op.execute(
                f"ALTER TABLE {table} ALTER COLUMN app_type TYPE VARCHAR(8) USING {_TO_WORD}"
            )
            continue
        with op.batch_alter_table(table, recreate="always") as batch:
            batch.alter_column(
                "app_type", existing_type=sa.Integer(), type_=sa.String(8),
                existing_nullable=False,
            )
        # The copy cast 1 to '1': the word back in its place.
        op.execute(f"UPDATE {table} SET app_type = {_DIGITS_TO_WORD}")  # noqa: S608  # TABLES
