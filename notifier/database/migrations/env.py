"""Alembic environment: servicekit/database.py passes an open connection."""

from alembic import context

from notifier.database.models import Base

attributes = context.config.attributes
context.configure(
    connection=attributes["connection"],
    target_metadata=Base.metadata,
    render_as_batch=True,
    version_table=attributes["version_table"],
)
with context.begin_transaction():
    context.run_migrations()
