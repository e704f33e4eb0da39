"""Server fixtures: a migrated database on SQLite and on Postgres, and an in-process client.

Postgres gets one fresh database per test module (dropped afterwards) whose tables are emptied
before each test, so every test starts from nothing on both databases.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from starlette.testclient import TestClient

from server.config import Settings
from server.db import make_engine
from server.main import create_app
from server.migrations import upgrade_to_head
from tests.server.support import fresh_postgres_database, require_postgres

TABLES = ("task_event", "task", "worker", "experiment")


@pytest.fixture(scope="module")
def _postgres_url() -> Iterator[str]:
    require_postgres()
    with fresh_postgres_database() as url:
        engine = make_engine(url)
        upgrade_to_head(engine)
        engine.dispose()
        yield url


@pytest.fixture
def postgres_url(_postgres_url: str) -> str:
    """The module's migrated Postgres database, emptied (Postgres-only tests)."""
    _empty_postgres(_postgres_url)
    return _postgres_url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A migrated, empty database of each kind."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'morphml.db'}"
        engine = make_engine(url)
        upgrade_to_head(engine)
        engine.dispose()
        return url
    url: str = request.getfixturevalue("_postgres_url")
    _empty_postgres(url)
    return url


def _empty_postgres(url: str) -> None:
    engine = make_engine(url)
    with engine.begin() as connection:
        connection.execute(sa.text(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE"))
    engine.dispose()


def test_settings(database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "reaper_interval_seconds": 0.2,
        "claim_repoll_seconds": 0.5,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def make_client(database_url: str) -> Iterator[Callable[..., TestClient]]:
    """Build clients on the test database with settings overrides; all are closed afterwards."""
    opened: list[TestClient] = []

    def make(**overrides: Any) -> TestClient:
        app: FastAPI = create_app(test_settings(database_url, **overrides))
        client = TestClient(app)
        client.__enter__()
        opened.append(client)
        return client

    yield make
    for client in reversed(opened):
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client: Callable[..., TestClient]) -> TestClient:
    return make_client()
