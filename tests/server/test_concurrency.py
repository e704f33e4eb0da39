"""Postgres only: concurrent claimers never get the same task (SKIP LOCKED), and none is missed;
concurrent completes tell each outcome once and meet the budget exactly."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import sqlalchemy as sa

from server.db import db_now, make_engine, read, unit
from server.experiments import create_experiment
from server.migrations import upgrade_to_head
from server.models import (
    EXPERIMENT,
    TASK,
    Experiment,
    ExperimentStatus,
    Task,
    TaskState,
    Worker,
    WorkerStatus,
)
from server.reaper import feed_running_experiments
from server.schemas import ExperimentCreate, WorkerCreate
from server.store import tasks as store
from server.workers import register_worker
from tests.server.support import fresh_postgres_database, require_postgres, spec, worker_body

CLAIMERS, TASKS = 16, 1000
# Every loop below ends when the work is done; a bug could keep it going forever (a task offered
# again and again, a refill that never comes). Past this, the loop fails and says which one.
LOOP_SECONDS = 120.0


class Deadline:
    """A time limit shared by the threads of one test; `check` fails the caller once it passed."""

    def __init__(self, seconds: float = LOOP_SECONDS) -> None:
        self.seconds = seconds
        self.at = time.monotonic() + seconds

    def passed(self) -> bool:
        return time.monotonic() > self.at

    def check(self, what: str) -> None:
        if self.passed():
            raise AssertionError(f"after {self.seconds:.0f} s {what}")


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
    with unit(engine) as connection:
        experiment_id = connection.execute(
            sa.insert(Experiment)
            .values(name="load", status=ExperimentStatus.RUNNING, spec={}, created_at=db_now())
            .returning(EXPERIMENT.id)
        ).scalar_one()
        rows = [
            {
                "experiment_id": experiment_id,
                "state": TaskState.PENDING,
                "candidate": {},
                "candidate_key": f"k{i}",
            }
            for i in range(TASKS)
        ]
        connection.execute(sa.insert(Task).values(created_at=db_now()), rows)
        workers = [
            connection.execute(
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


def _drain(engine: sa.Engine, worker_id: int, deadline: Deadline) -> list[int]:
    claimed: list[int] = []
    while isinstance(found := _claim(engine, worker_id), store.Claim):
        claimed.append(found.task.id)
        deadline.check(f"worker {worker_id} is still claiming ({len(claimed)} tasks so far)")
    return claimed


def _claim(engine: sa.Engine, worker_id: int) -> store.Claim | store.Miss:
    found = store.claim(engine, worker_id=worker_id, free_gpus=0, free_gpu_memory_mb=0, labels={})
    return found if isinstance(found, store.Miss) else found[0]  # a batch of one


@pytest.mark.postgres
def test_sixteen_claimers_get_each_task_exactly_once(pg_engine: sa.Engine) -> None:
    workers, deadline = _seed(pg_engine), Deadline()
    with ThreadPoolExecutor(max_workers=CLAIMERS) as pool:
        batches = list(pool.map(lambda w: _drain(pg_engine, w, deadline), workers))
    claimed = [task_id for batch in batches for task_id in batch]
    assert len(claimed) == TASKS
    assert len(set(claimed)) == TASKS
    assert sum(1 for batch in batches if batch) > 1, "claims were not actually concurrent"
    with read(pg_engine) as connection:
        events = connection.scalar(
            sa.text("SELECT count(*) FROM task_event WHERE kind = 'claimed'")
        )
    assert events == TASKS


def _claim_and_complete_until(
    engine: sa.Engine, worker_id: int, done: threading.Event, deadline: Deadline
) -> int:
    """Claim and complete until the experiment is done; how many this worker completed."""
    completed = 0
    while not done.is_set():
        deadline.check(f"the experiment still runs (worker {worker_id} completed {completed})")
        found = _claim(engine, worker_id)
        if isinstance(found, store.Miss):
            time.sleep(0.01)  # a refill is under way, or was left to the reaper
            continue
        task = found.task
        store.complete(
            engine, task_id=task.id, lease_token=task.lease_token, metrics={"val_accuracy": 0.5}
        )
        completed += 1
    return completed


def _reaper(
    engine: sa.Engine, experiment_id: int, done: threading.Event, deadline: Deadline
) -> None:
    """The reaper's top-up pass, every 0.2 s, until the experiment has finished (or the deadline
    passed: then the claimers fail, and say so)."""
    while not done.wait(0.2) and not deadline.passed():
        feed_running_experiments(engine)
        with read(engine) as connection:
            status = connection.scalar(
                sa.select(EXPERIMENT.status).where(EXPERIMENT.id == experiment_id)
            )
        if status != ExperimentStatus.RUNNING:
            done.set()


@pytest.mark.postgres
def test_concurrent_completes_tell_every_outcome_once_and_finish(pg_engine: sa.Engine) -> None:
    """Completes lock only their task and refill after their commit, queueing behind a refill
    under way: the budget is still met exactly, and each outcome told once."""
    body = ExperimentCreate.model_validate(
        spec(budget={"max_evaluations": 20, "max_seconds": None}, parallelism=8)
    )
    experiment_id = create_experiment(pg_engine, spec=body).id
    workers = [
        register_worker(pg_engine, body=WorkerCreate.model_validate(worker_body(f"w{i}"))).id
        for i in range(CLAIMERS // 2)
    ]
    done, deadline = threading.Event(), Deadline()
    reaper = threading.Thread(target=_reaper, args=(pg_engine, experiment_id, done, deadline))
    reaper.start()
    try:
        with ThreadPoolExecutor(max_workers=len(workers)) as pool:
            counts = list(
                pool.map(lambda w: _claim_and_complete_until(pg_engine, w, done, deadline), workers)
            )
    finally:
        done.set()
        reaper.join()
    assert sum(counts) == 20
    assert sum(1 for count in counts if count) > 1, "completes were not actually concurrent"
    with read(pg_engine) as connection:
        experiment = connection.execute(
            sa.select(EXPERIMENT.id.table).where(EXPERIMENT.id == experiment_id)
        ).one()
        states = connection.execute(
            sa.select(TASK.state, TASK.tell_pending).where(TASK.experiment_id == experiment_id)
        ).all()
    assert experiment.status == ExperimentStatus.COMPLETED
    assert experiment.tasks_created == 20
    assert experiment.optimizer_state is not None
    assert experiment.optimizer_state["told"] == 20
    assert sorted(state for state, _ in states) == [TaskState.COMPLETED] * 20
    assert not any(pending for _, pending in states)
