"""Alembic environment: the broker passes an open connection (see servicekit/database.py)."""

from alembic import context

from broker.storage.tables import Base

attributes = context.config.attributes
context.configure(
    connection=attributes["connection"],
    target_metadata=Base.metadata,
    render_as_batch=True,
    version_table=attributes.get("version_table", "alembic_version"),
)
with context.begin_transaction():
    context.run_migrations()
