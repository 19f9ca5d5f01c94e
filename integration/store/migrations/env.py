"""Alembic environment: runs on the connection the store hands over.

The store calls Alembic programmatically (`integration.store.engine.migrate`),
so there is no alembic.ini and no URL here.
"""

from alembic import context

connection = context.config.attributes["connection"]
context.configure(connection=connection, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
