"""Engines, database time and the one-transaction-per-unit-of-work context manager.

SQLite runs in WAL mode with a busy timeout, and every writing transaction starts with BEGIN
IMMEDIATE: it takes the write lock up front, so a read-then-write unit (a claim) can never be
upgraded into a "database is locked" failure halfway through. Writers of one process queue on a
lock before BEGIN IMMEDIATE instead of spinning in SQLite's busy handler (sleep-and-retry burns
CPU and serves waiters in no particular order). Read-only units (`read`, `read_session`) take
neither: under WAL a reader sees a consistent snapshot and never blocks a writer.
"""

from __future__ import annotations

import asyncio
import functools
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import UTC, datetime
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Dialect, Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import FunctionElement

from server.errors import ConflictError
from server.wakeup import forget_announced, notify_replicas, wake_claimers

T = TypeVar("T")


class UTCDateTime(sa.TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on both databases (SQLite hands back naive values)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class db_now(FunctionElement[datetime]):
    """The database clock; `db_now(seconds)` is that clock shifted by a bound number of seconds."""

    type = UTCDateTime()
    inherit_cache = True


@compiles(db_now, "postgresql")
def _pg_now(element: db_now, compiler: SQLCompiler, **kw: Any) -> str:
    if not element.clauses.clauses:
        return "now()"
    return f"(now() + make_interval(secs => {compiler.process(element.clauses, **kw)}))"


@compiles(db_now, "sqlite")
def _sqlite_now(element: db_now, compiler: SQLCompiler, **kw: Any) -> str:
    # CURRENT_TIMESTAMP has one-second resolution, too coarse for leases of a few seconds.
    if not element.clauses.clauses:
        return "strftime('%Y-%m-%d %H:%M:%f', 'now')"
    shift = compiler.process(element.clauses, **kw)
    return f"strftime('%Y-%m-%d %H:%M:%f', 'now', printf('%+.3f seconds', {shift}))"


class Database:
    """The engine and the threads that run its units of work for the async request handlers.

    A dedicated executor, not the framework's 40-thread pool: SQLite has one writer, so one
    thread runs its units back to back instead of 40 threads taking turns on its lock and on
    the GIL; Postgres gets a few threads, within the connection pool.
    """

    def __init__(self, engine: Engine, threads: int, refill_threads: int = 2) -> None:
        self.engine = engine
        self.threads = threads
        self.refill_threads = refill_threads
        self._executor: ThreadPoolExecutor | None = None
        self._refills: ThreadPoolExecutor | None = None

    async def run(self, function: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """`function(self.engine, *args, **kwargs)` on a database thread."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(self.threads, thread_name_prefix="morphml-db")
        return await _in(self._executor, functools.partial(function, self.engine, *args, **kwargs))

    async def refill(self, function: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """`run` for refills, on threads of their own: a refill asks its optimizer (seconds,
        for a space of huge architectures) and must not hold the threads that serve claims,
        heartbeats and completes of every other experiment."""
        if self._refills is None:
            self._refills = ThreadPoolExecutor(
                self.refill_threads, thread_name_prefix="morphml-refill"
            )
        return await _in(self._refills, functools.partial(function, self.engine, *args, **kwargs))

    def close(self) -> None:
        for executor in (self._executor, self._refills):
            if executor is not None:
                executor.shutdown(wait=True)
        self._executor = self._refills = None


async def _in(executor: ThreadPoolExecutor, call: Callable[[], T]) -> T:
    return await asyncio.get_running_loop().run_in_executor(executor, call)


def is_postgres(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql"


def make_engine(url: str, *, busy_timeout_ms: int = 30_000) -> Engine:
    """An engine for `url`; SQLite gets WAL, a busy timeout and BEGIN IMMEDIATE transactions."""
    if url.startswith("sqlite"):
        engine = sa.create_engine(url, connect_args={"check_same_thread": False})
        _configure_sqlite(engine, busy_timeout_ms)
        return engine
    return sa.create_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True)


def _set_wal(cursor: Any, patience: float) -> None:
    """Switch a new database to WAL. Switching needs an exclusive lock and SQLite answers
    "database is locked" at once, without its busy handler, when another process (a second
    `migrate` starting beside this one) holds the file: retry for up to `patience` seconds."""
    deadline = time.monotonic() + max(patience, 1.0)
    while True:
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(0.05)


def _configure_sqlite(engine: Engine, busy_timeout_ms: int) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Hand transaction control to SQLAlchemy's "begin" event below (pysqlite recipe).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        _set_wal(cursor, busy_timeout_ms / 1000)
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: sa.Connection) -> None:
        read_only = connection.get_execution_options().get(_READ_ONLY, False)
        connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


# Execution option that marks a read-only unit (SQLite: a deferred BEGIN, no write lock).
_READ_ONLY = "morphml_read_only"


_SQLITE_WRITE_LOCKS: weakref.WeakKeyDictionary[Engine, threading.RLock] = (
    weakref.WeakKeyDictionary()
)
_LOCKS_GUARD = threading.Lock()


def _write_lock(engine: Engine) -> AbstractContextManager[Any]:
    """SQLite: this process's queue for the one write lock; Postgres locks rows, so no queue."""
    if engine.dialect.name != "sqlite":
        return nullcontext()
    with _LOCKS_GUARD:
        lock = _SQLITE_WRITE_LOCKS.get(engine)
        if lock is None:
            # Re-entrant: a unit nested in another on the same thread behaves as it did before.
            lock = _SQLITE_WRITE_LOCKS[engine] = threading.RLock()
    return lock


@contextmanager
def unit(engine: Engine) -> Iterator[Connection]:
    """One unit of work on a Core connection: commit on success, roll back on error,
    IntegrityError -> ConflictError. Tasks it announced (`server.wakeup.announce_tasks`) are
    NOTIFYed inside the transaction and wake this process's claimers once it has committed."""
    announced = 0
    with _write_lock(engine):
        try:
            with engine.begin() as connection:
                try:
                    yield connection
                    announced = notify_replicas(connection)
                except BaseException:
                    forget_announced(connection)
                    raise
        except IntegrityError as exc:
            raise ConflictError(str(exc.orig)) from exc
    wake_claimers(engine, announced)


@contextmanager
def read(engine: Engine) -> Iterator[Connection]:
    """A read-only unit that sees one snapshot: a view's counts and its rows agree (Postgres:
    REPEATABLE READ, which never fails a read-only transaction). On SQLite neither this
    process's write lock nor BEGIN IMMEDIATE, so listings and the /metrics scrape never wait
    for writers."""
    with engine.connect() as connection:
        connection.execution_options(**{_READ_ONLY: True})
        if is_postgres(engine):
            connection.execution_options(isolation_level="REPEATABLE READ")
        with connection.begin():
            # Ends with COMMIT (it wrote nothing), not ROLLBACK: psycopg drops every prepared
            # statement of the connection on a ROLLBACK, and the hot path's statements would
            # then be parsed again on every call.
            yield connection


@contextmanager
def read_session(engine: Engine) -> Iterator[Session]:
    """`read` for the ORM read paths (admin listings and views)."""
    with read(engine) as connection:
        session = Session(bind=connection, autoflush=False)
        try:
            yield session
        finally:
            session.close()
