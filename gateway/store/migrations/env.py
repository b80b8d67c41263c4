"""Alembic environment: the engine comes from Accord (``gateway.store.engine.upgrade``)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Engine
from sqlmodel import SQLModel

from gateway.store import tables  # noqa: F401  (registers the tables)
from gateway.store.engine import create_db_engine

target_metadata = SQLModel.metadata


def _engine() -> Engine:
    engine = context.config.attributes.get("engine")
    if engine is not None:
        return engine  # type: ignore[no-any-return]
    url = context.config.get_main_option("sqlalchemy.url")
    if not url:
        from gateway.settings import Settings

        url = Settings().resolved_database_url()
    return create_db_engine(url)


def run_migrations_online() -> None:
    with _engine().connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",
        )
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()


run_migrations_online()
