"""The server tests' database fixtures (SQLite and Postgres, migrated and empty), reused."""

from tests.server.conftest import _postgres_url, database_url, make_client

__all__ = ["_postgres_url", "database_url", "make_client"]
