"""Alembic environment: migrates the connection the server hands over, or the configured URL."""

from __future__ import annotations

import sqlalchemy as sa
from sqlmodel import SQLModel

import server.models  # noqa: F401 - registers the tables on SQLModel.metadata
from alembic import context

target_metadata = SQLModel.metadata


def _run(connection: sa.Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = context.config.get_main_option("sqlalchemy.url")
    engine = sa.create_engine(url or "sqlite:///morphml.db")
    with engine.connect() as fresh:
        _run(fresh)
    engine.dispose()


run_migrations_online()
