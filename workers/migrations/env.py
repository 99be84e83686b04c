"""Alembic environment: the engine comes from aduan's settings, never from alembic.ini."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Engine

from workers.models import Base

engine = context.config.attributes.get("engine")
if not isinstance(engine, Engine):
    raise RuntimeError("Run migrations with `aduan db upgrade`; it supplies the database engine.")

with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
