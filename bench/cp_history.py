"""Control-plane bench: write a history of finished tasks straight into a migrated database.

Tasks finished long ago cost the claim nothing if the queries are indexed; what a 100k-task
experiment really carries is also its optimizer state (random search remembers every
architecture it proposed), so `same_experiment=True` grows that state as a real run would.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from bench.cp_env import sqlalchemy_url
from server.models import EXPERIMENT, EventKind, Experiment, TaskEvent, TaskState

BATCH = 5_000
HISTORY_CANDIDATE: dict[str, Any] = {
    "architecture": {"space": "bench", "nodes": [], "config": {}},
    "budget": None,
    "meta": {},
}


def _fake_hash(index: int) -> str:
    return hashlib.sha256(f"history-{index}".encode()).hexdigest()


def _task_rows(experiment_id: int, start: int, stop: int) -> list[dict[str, Any]]:
    finished = datetime.now(UTC) - timedelta(days=1)
    return [
        {
            "experiment_id": experiment_id,
            "state": TaskState.COMPLETED,
            "candidate": HISTORY_CANDIDATE,
            "candidate_key": f"{_fake_hash(i)}@None",
            "attempt": 1,
            "max_attempts": 3,
            "metrics": {"val_accuracy": (i % 997) / 997},
            "score": (i % 997) / 997,
            "created_at": finished - timedelta(seconds=2),
            "claimed_at": finished - timedelta(seconds=1),
            "heartbeat_at": finished - timedelta(seconds=1),
            "finished_at": finished,
        }
        for i in range(start, stop)
    ]


def _event_rows(experiment_id: int, task_ids: list[int]) -> list[dict[str, Any]]:
    when = datetime.now(UTC) - timedelta(days=1)
    kinds = (EventKind.CREATED, EventKind.CLAIMED, EventKind.COMPLETED)
    return [
        {
            "task_id": task_id,
            "experiment_id": experiment_id,
            "kind": kind,
            "attempt": 1,
            "detail": {},
            "created_at": when,
        }
        for task_id in task_ids
        for kind in kinds
    ]


def _insert_batch(conn: Connection, experiment_id: int, start: int, stop: int) -> None:
    # The table as the database has it: an older server's schema (bench.control_plane_ab's
    # "before") still has task.intermediate, which is NOT NULL there.
    table = sa.Table("task", sa.MetaData(), autoload_with=conn)
    rows = _task_rows(experiment_id, start, stop)
    if "intermediate" in table.c:
        rows = [{**row, "intermediate": {}} for row in rows]
    tasks = sa.insert(table).returning(table.c.id, sort_by_parameter_order=True)
    ids = list(conn.execute(tasks, rows).scalars())
    conn.execute(sa.insert(TaskEvent), _event_rows(experiment_id, ids))


def _history_experiment(conn: Connection, bench_id: int, same_experiment: bool) -> int:
    """The bench experiment itself, or a finished copy of it that owns the history."""
    if same_experiment:
        return bench_id
    row = conn.execute(sa.select(Experiment).where(EXPERIMENT.id == bench_id)).one()._asdict()
    row.pop("id")
    row.update(status="completed", optimizer_state=None, name="history")
    insert = sa.insert(Experiment).values(row).returning(EXPERIMENT.id)
    return int(conn.execute(insert).scalar_one())


def _grow_state(conn: Connection, experiment_id: int, count: int) -> None:
    """The optimizer state as if it had proposed the `count` historical architectures: an
    optimizer that persists what it has seen (`seen` in its state) gets them added; random
    search no longer keeps them (the server's task table answers "already tried?")."""
    state = conn.execute(
        sa.select(EXPERIMENT.optimizer_state).where(EXPERIMENT.id == experiment_id)
    ).scalar_one()
    if "seen" in state:
        state = {**state, "seen": sorted({*state["seen"], *map(_fake_hash, range(count))})}
    conn.execute(
        sa.update(Experiment)
        .where(EXPERIMENT.id == experiment_id)
        .values(optimizer_state=state, tasks_created=EXPERIMENT.tasks_created + count)
    )


def insert_history(
    database_url: str, *, bench_experiment_id: int, count: int, same_experiment: bool
) -> None:
    engine = sa.create_engine(sqlalchemy_url(database_url))
    try:
        with engine.begin() as conn:
            owner = _history_experiment(conn, bench_experiment_id, same_experiment)
            for start in range(0, count, BATCH):
                _insert_batch(conn, owner, start, min(count, start + BATCH))
            if same_experiment:
                _grow_state(conn, owner, count)
        with engine.connect() as conn:
            conn.execute(sa.text("ANALYZE"))
    finally:
        engine.dispose()
