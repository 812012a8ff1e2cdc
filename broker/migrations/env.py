"""Alembic environment: the broker passes an open connection (see broker/db.py)."""

from alembic import context

from broker.models import Base

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
