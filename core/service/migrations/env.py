"""Alembic's entry: run on the connection the store passes in (store.migrate), with
Cronium's own version table so that Prefect's `alembic_version` is left alone."""

from alembic import context

from cronium_prefect.service.tables import VERSION_TABLE, Base

context.configure(
    connection=context.config.attributes["connection"],
    target_metadata=Base.metadata,
    version_table=VERSION_TABLE,
    render_as_batch=True,  # SQLite alters tables by copying them
)
with context.begin_transaction():
    context.run_migrations()
