"""The server imports neither torch nor the worker, and its migrations match its models."""

from __future__ import annotations

import subprocess
import sys

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlmodel import SQLModel

from server.db import make_engine


def test_server_imports_neither_torch_nor_worker() -> None:
    code = (
        "import sys, server.main, server.cli;"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'worker'));"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_migrations_agree_with_models(database_url: str) -> None:
    engine = make_engine(database_url)
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        diff = compare_metadata(context, SQLModel.metadata)
    engine.dispose()
    assert diff == []
