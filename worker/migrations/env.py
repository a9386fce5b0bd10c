"""Alembic environment: the engine comes from ptsync, never from an ini file."""

from __future__ import annotations

from alembic import context

from worker.store.models import Base

config = context.config
engine = config.attributes.get("engine")
if engine is None:  # plain `alembic` CLI use: build from the environment
    from worker.settings import get_settings
    from worker.store.db import make_engine

    engine = make_engine(get_settings().resolved_database_url)

with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
