"""Control-plane bench: what users would pick instead, and the bare-SQL ceiling.

- Optuna RDBStorage (SQLite file or Postgres) and JournalStorage (a file): N processes each
  running ask -> tell with a trivial objective, started together behind a barrier.
- The ceiling: N psycopg clients, each looping the claim (`UPDATE ... WHERE id = (SELECT ...
  FOR UPDATE SKIP LOCKED) RETURNING`) and the complete, on a plain table of pending rows.
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Callable
from multiprocessing.synchronize import Barrier
from typing import Any

import psycopg

Loop = Callable[[str, float, Barrier, "multiprocessing.Queue[tuple[int, int]]"], None]


def optuna_storage(kind: str, target: str) -> Any:
    """`rdb` takes a SQLAlchemy URL, `journal` a file path."""
    import optuna
    from optuna.storages.journal import JournalFileBackend

    if kind == "journal":
        return optuna.storages.JournalStorage(JournalFileBackend(target))
    return optuna.storages.RDBStorage(target)


def optuna_url(database_url: str) -> str:
    if database_url.startswith("postgresql://"):
        return "postgresql+psycopg://" + database_url.removeprefix("postgresql://")
    return database_url


def _optuna_loop(
    spec: str, seconds: float, start: Barrier, out: multiprocessing.Queue[tuple[int, int]]
) -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    kind, target = spec.split("|", 1)
    study = optuna.load_study(study_name="bench", storage=optuna_storage(kind, target))
    start.wait()
    done = errors = 0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        try:
            trial = study.ask()
            study.tell(trial, trial.suggest_float("x", -1.0, 1.0) ** 2)
            done += 1
        except Exception:  # e.g. "database is locked" on SQLite: counted, not fatal
            errors += 1
    out.put((done, errors))


def run_optuna(kind: str, target: str, *, processes: int, seconds: float) -> tuple[float, int]:
    """(trials per second over all processes, errors) for a fresh study on `target`."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = optuna_storage(kind, optuna_url(target) if kind == "rdb" else target)
    optuna.create_study(study_name="bench", storage=storage)
    del storage
    spec = f"{kind}|{optuna_url(target) if kind == 'rdb' else target}"
    return _run_processes(_optuna_loop, spec, processes=processes, seconds=seconds)


def _run_processes(loop: Loop, spec: str, *, processes: int, seconds: float) -> tuple[float, int]:
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(processes + 1)
    out: multiprocessing.Queue[tuple[int, int]] = context.Queue()
    children = [
        context.Process(target=loop, args=(spec, seconds, start, out)) for _ in range(processes)
    ]
    for child in children:
        child.start()
    start.wait(timeout=120)
    results = [out.get(timeout=seconds + 120) for _ in children]
    for child in children:
        child.join()
    return sum(done for done, _ in results) / seconds, sum(errors for _, errors in results)


CEILING_SCHEMA = """
CREATE TABLE IF NOT EXISTS bench_queue (
    id bigserial PRIMARY KEY, state text NOT NULL, lease_token text,
    lease_expires_at timestamptz, worker_id int, metrics jsonb, finished_at timestamptz);
CREATE INDEX IF NOT EXISTS bench_queue_state_id ON bench_queue (state, id);
"""
CLAIM_SQL = """
UPDATE bench_queue SET state = 'running', lease_token = md5(random()::text),
    lease_expires_at = now() + interval '60 seconds', worker_id = %s
WHERE id = (SELECT id FROM bench_queue WHERE state = 'pending' ORDER BY id LIMIT 1
            FOR UPDATE SKIP LOCKED)
RETURNING id, lease_token
"""
COMPLETE_SQL = """
UPDATE bench_queue SET state = 'completed', metrics = %s, finished_at = now(),
    lease_token = NULL, lease_expires_at = NULL
WHERE id = %s AND lease_token = %s AND state = 'running'
"""


def prepare_ceiling(url: str, rows: int) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(CEILING_SCHEMA)
        conn.execute(
            "INSERT INTO bench_queue (state) SELECT 'pending' FROM generate_series(1, %s)", (rows,)
        )
        conn.execute("VACUUM ANALYZE bench_queue")


def _ceiling_loop(
    spec: str, seconds: float, start: Barrier, out: multiprocessing.Queue[tuple[int, int]]
) -> None:
    url, mode = spec.rsplit("|", 1)
    done = 0
    with psycopg.connect(url) as conn:
        start.wait()
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            row = conn.execute(CLAIM_SQL, (1,)).fetchone()
            if mode == "two":
                conn.commit()  # the worker's training happens between the two commits
            if row is None:
                break
            conn.execute(COMPLETE_SQL, ('{"val_accuracy": 0.5}', row[0], row[1]))
            conn.commit()
            done += 1
    out.put((done, 0))


def run_ceiling(url: str, *, clients: int, seconds: float, commits: str) -> float:
    """Cycles per second; `commits` is "two" (claim, complete) or "one" (both in one)."""
    rate, _errors = _run_processes(
        _ceiling_loop, f"{url}|{commits}", processes=clients, seconds=seconds
    )
    return rate
