"""Units of work on SQLite: a read-only unit neither waits for nor blocks a writer."""

from __future__ import annotations

import threading
from pathlib import Path

import sqlalchemy as sa

from server.db import make_engine, read, unit
from server.migrations import upgrade_to_head


def test_a_read_does_not_wait_for_an_open_write_unit(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'db.sqlite'}", busy_timeout_ms=30_000)
    upgrade_to_head(engine)
    writing, release = threading.Event(), threading.Event()

    def hold_the_write_lock() -> None:
        with unit(engine) as connection:
            connection.execute(sa.text("UPDATE worker SET name = name"))
            writing.set()
            release.wait(30)

    writer = threading.Thread(target=hold_the_write_lock)
    writer.start()
    try:
        assert writing.wait(10)
        done = threading.Event()

        def count() -> None:
            with read(engine) as connection:
                connection.execute(sa.text("SELECT count(*) FROM task")).scalar_one()
            done.set()

        reader = threading.Thread(target=count, daemon=True)
        reader.start()
        # A unit would queue behind the writer (process lock, then BEGIN IMMEDIATE) for 30 s.
        assert done.wait(5), "the read waited for the writer"
    finally:
        release.set()
        writer.join()
        engine.dispose()
