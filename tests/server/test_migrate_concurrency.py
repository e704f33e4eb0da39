"""Replicas starting together migrate together: concurrent `morphml-server migrate` runs on a
fresh database take turns (a Postgres advisory lock; SQLite's write lock, which every unit of
work takes with BEGIN IMMEDIATE) and all succeed, leaving one schema at head."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.script import ScriptDirectory

from server.migrations import alembic_config
from tests.server.support import fresh_postgres_database, require_postgres

pytestmark = pytest.mark.slow

RUNS = 3
# Each run imports the server, then waits for the same instant, so the migrations overlap.
RACE = """
import sys, time
from server.db import make_engine
from server.migrations import upgrade_to_head
engine = make_engine(sys.argv[1])
time.sleep(max(0.0, float(sys.argv[2]) - time.time()))
upgrade_to_head(engine)
engine.dispose()
"""


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def fresh_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'fresh.db'}"
        return
    require_postgres()
    with fresh_postgres_database() as url:
        yield url


def test_concurrent_migrations_take_turns_and_all_succeed(fresh_url: str) -> None:
    start_at = time.time() + 4.0  # time enough for every process to import the server
    runs = [
        subprocess.Popen(
            [sys.executable, "-c", RACE, fresh_url, str(start_at)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for _ in range(RUNS)
    ]
    outputs = [run.communicate(timeout=120)[0].decode(errors="replace") for run in runs]
    assert [run.returncode for run in runs] == [0] * RUNS, "\n\n".join(outputs)
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    engine = sa.create_engine(fresh_url)
    try:
        with engine.connect() as connection:
            versions = connection.execute(sa.text("SELECT version_num FROM alembic_version"))
            assert [row[0] for row in versions] == [head]
            assert {"experiment", "task", "worker"} <= set(sa.inspect(connection).get_table_names())
    finally:
        engine.dispose()


def test_the_cli_migrates_an_already_migrated_database_again(fresh_url: str) -> None:
    command = [str(Path(sys.executable).with_name("morphml-server")), "migrate"]
    for _ in range(2):
        result = subprocess.run(
            [*command, "--database-url", fresh_url], capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 0, result.stderr
        assert "database at head" in result.stderr
