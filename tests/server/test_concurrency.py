"""Postgres only: concurrent claimers never get the same task (SKIP LOCKED), and none is missed."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import sqlalchemy as sa

from server import queue
from server.db import db_now, make_engine, transaction
from server.migrations import upgrade_to_head
from server.models import Experiment, ExperimentStatus, Task, TaskState, Worker, WorkerStatus
from tests.server.support import fresh_postgres_database, require_postgres

CLAIMERS, TASKS = 16, 1000


@pytest.fixture
def pg_engine() -> Iterator[sa.Engine]:
    require_postgres()
    with fresh_postgres_database() as url:
        engine = make_engine(url)
        upgrade_to_head(engine)
        yield engine
        engine.dispose()


def _seed(engine: sa.Engine) -> list[int]:
    """One running experiment with TASKS pending tasks, and one worker per claimer."""
    with transaction(engine) as session:
        experiment = Experiment(
            name="load",
            status=ExperimentStatus.RUNNING,
            spec={},
            created_at=session.scalar(sa.select(db_now())),
        )
        session.add(experiment)
        session.flush()
        rows = [
            {
                "experiment_id": experiment.id,
                "state": TaskState.PENDING,
                "candidate": {},
                "candidate_key": f"k{i}",
                "intermediate": {},
            }
            for i in range(TASKS)
        ]
        session.execute(sa.insert(Task).values(created_at=db_now()), rows)
        workers = [
            session.execute(
                sa.insert(Worker)
                .values(
                    name=f"w{i}",
                    host="h",
                    resources={},
                    labels={},
                    status=WorkerStatus.ONLINE,
                    created_at=db_now(),
                    last_seen_at=db_now(),
                )
                .returning(Worker.id)  # type: ignore[arg-type]
            ).scalar_one()
            for i in range(CLAIMERS)
        ]
    return workers


def _drain(engine: sa.Engine, worker_id: int) -> list[int]:
    claimed = []
    while (
        found := queue.claim_task(
            engine, worker_id=worker_id, free_gpus=0, free_gpu_memory_mb=0, labels={}
        )
    ) is not None:
        assert found.task.id is not None
        claimed.append(found.task.id)
    return claimed


@pytest.mark.postgres
def test_sixteen_claimers_get_each_task_exactly_once(pg_engine: sa.Engine) -> None:
    workers = _seed(pg_engine)
    with ThreadPoolExecutor(max_workers=CLAIMERS) as pool:
        batches = list(pool.map(lambda w: _drain(pg_engine, w), workers))
    claimed = [task_id for batch in batches for task_id in batch]
    assert len(claimed) == TASKS
    assert len(set(claimed)) == TASKS
    assert sum(1 for batch in batches if batch) > 1, "claims were not actually concurrent"
    with transaction(pg_engine) as session:
        events = session.scalar(sa.text("SELECT count(*) FROM task_event WHERE kind = 'claimed'"))
    assert events == TASKS
