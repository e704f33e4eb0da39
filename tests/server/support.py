"""Helpers for the server tests: specs, a worker that claims and completes, database URLs."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest
from sqlalchemy.engine import make_url

from morphml import Layer, SearchSpace

PG_URL = os.environ.get(
    "TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


def tiny_space() -> dict[str, Any]:
    """24 architectures: small enough to exhaust, big enough for a few dozen tasks."""
    space = SearchSpace("tiny").add_layers(
        Layer.input(shape=(1, 8, 8)),
        Layer.conv2d(filters=[4, 8, 16], kernel_size=[1, 3]),
        Layer.relu(),
        Layer.flatten(),
        Layer.dense(units=[8, 16, 32, 64]),
        Layer.output(units=10),
    )
    return space.to_dict()


def spec(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "tiny",
        "search_space": tiny_space(),
        "optimizer": {"name": "random", "params": {}},
        "objectives": [{"metric": "val_accuracy", "direction": "maximize"}],
        "evaluator": {"kind": "proxy", "params": {}},
        "budget": {"max_evaluations": 6, "max_seconds": None},
        "parallelism": 2,
        "lease_seconds": 30,
        "max_attempts": 3,
        "priority": 0,
        "resources": {"gpus": 0},
        "seed": 1,
    }
    body.update(overrides)
    return body


def worker_body(
    name: str = "w", gpus: int = 0, labels: dict[str, str] | None = None
) -> dict[str, Any]:
    devices = [{"index": i, "name": "fake", "memory_mb": 16_000} for i in range(gpus)]
    return {
        "name": name,
        "host": "test-host",
        "resources": {"cpus": 2, "memory_mb": 4096, "gpus": devices},
        "labels": labels or {},
    }


def _postgres_admin_conninfo() -> str:
    return make_url(PG_URL).set(drivername="postgresql").render_as_string(hide_password=False)


def postgres_available() -> str | None:
    """None when Postgres answers, else the reason it does not."""
    try:
        with psycopg.connect(_postgres_admin_conninfo(), connect_timeout=2):
            return None
    except psycopg.Error as exc:
        return f"PostgreSQL not reachable at {make_url(PG_URL).render_as_string()}: {exc}"


def require_postgres() -> None:
    """Skip without Postgres, except under CI=true, where a missing database is a failure."""
    reason = postgres_available()
    if reason is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true needs PostgreSQL: {reason}")
    pytest.skip(reason)


@contextmanager
def fresh_postgres_database() -> Iterator[str]:
    """A new uniquely named database (dropped afterwards); yields its SQLAlchemy URL."""
    name = f"morphml_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(_postgres_admin_conninfo(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(_postgres_admin_conninfo(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
