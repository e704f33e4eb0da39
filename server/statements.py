"""The hot path's SQL, built once: claim, heartbeat and complete run these on a Core connection.

A worker cycle (claim, heartbeat, complete) is the control plane's whole load. Built per call and
run through the ORM session, each statement cost 0.4-0.6 ms of Python before reaching the
database; prebuilt with bind parameters and executed on the unit's connection, SQLAlchemy only
looks its compiled form up in the cache (bench/README.md, "Second server pass").
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from server.db import db_now
from server.models import EVENT, EXPERIMENT, TASK, WORKER, ExperimentStatus, TaskState, WorkerStatus

_task = TASK.id.table
_worker = WORKER.id.table
_event = EVENT.id.table

IN_FLIGHT = (TaskState.PENDING, TaskState.RUNNING)
# A result row of any of these statements (SQLAlchemy types rows by their column count).
Row = sa.Row[*tuple[Any, ...]]

TOUCH_WORKER = (
    sa.update(_worker)
    .where(WORKER.id == sa.bindparam("worker_id"))
    .values(last_seen_at=db_now(), status=WorkerStatus.ONLINE)
    .returning(WORKER.resources, WORKER.labels)
)

IN_FLIGHT_COUNTS = (
    sa.select(TASK.experiment_id, TASK.state, sa.func.count())
    .where(TASK.state.in_(IN_FLIGHT))
    .group_by(TASK.experiment_id, TASK.state)
)

# What a claim needs of an experiment: never `optimizer_state`, which grows with the history.
RUNNING_EXPERIMENTS = sa.select(
    EXPERIMENT.id,
    EXPERIMENT.priority,
    EXPERIMENT.spec,
    EXPERIMENT.lease_seconds,
    EXPERIMENT.need_gpus,
    EXPERIMENT.need_gpu_memory_mb,
    EXPERIMENT.need_labels,
).where(EXPERIMENT.status == ExperimentStatus.RUNNING)

_LEASE_OF_TASK = (
    sa.select(EXPERIMENT.lease_seconds).where(EXPERIMENT.id == TASK.experiment_id).scalar_subquery()
)


def _claim() -> sa.Update:
    """UPDATE ... WHERE id = (SELECT ... FOR UPDATE SKIP LOCKED) RETURNING: one atomic statement.

    The oldest pending task of the experiment; Postgres re-checks the subquery's WHERE on the
    row it locks, so a task taken meanwhile is skipped, never handed out twice.
    """
    experiment_id: sa.BindParameter[int] = sa.bindparam("b_experiment_id")
    pick = (
        sa.select(TASK.id)
        .where(TASK.state == TaskState.PENDING, TASK.experiment_id == experiment_id)
        .order_by(TASK.id)
        .limit(1)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    lease = sa.select(EXPERIMENT.lease_seconds).where(EXPERIMENT.id == experiment_id)
    return (
        sa.update(_task)
        .where(TASK.id == pick)
        .values(
            state=TaskState.RUNNING,
            lease_token=sa.bindparam("b_lease_token"),
            lease_expires_at=db_now(lease.scalar_subquery()),
            worker_id=sa.bindparam("b_worker_id"),
            claimed_at=db_now(),
            heartbeat_at=db_now(),
            progress=None,
            step=None,
        )
        .returning(
            TASK.id,
            TASK.experiment_id,
            TASK.candidate,
            TASK.budget,
            TASK.attempt,
            TASK.lease_token,
            TASK.lease_expires_at,
            TASK.worker_id,
        )
    )


CLAIM = _claim()

# A heartbeat without metrics from the lease holder of a running task: one statement. Anything
# else (metrics for the pruner, a stale token, a stopped task) takes the general path.
BEAT = (
    sa.update(_task)
    .where(
        TASK.id == sa.bindparam("task_id"),
        TASK.lease_token == sa.bindparam("b_lease_token"),
        TASK.state == TaskState.RUNNING,
    )
    .values(
        heartbeat_at=db_now(),
        lease_expires_at=db_now(_LEASE_OF_TASK),
        progress=sa.bindparam("b_progress"),
        step=sa.bindparam("b_step"),
    )
    .returning(TASK.lease_expires_at, TASK.worker_id)
)

# Complete's lock: the task row only, with what the refill decision needs of its experiment and
# the clock. Completes of one experiment must not queue on the experiment row (each would hold
# it across its commit); the refill, when due, locks the experiment in a unit of its own.
# FOR NO KEY UPDATE: claims insert events whose foreign keys take KEY SHARE on the task row.
LOCK_FOR_OUTCOME = (
    sa.select(
        EXPERIMENT.status,
        EXPERIMENT.spec,
        EXPERIMENT.parallelism,
        EXPERIMENT.max_evaluations,
        EXPERIMENT.max_seconds,
        EXPERIMENT.started_at,
        EXPERIMENT.tasks_created,
        TASK.experiment_id,
        TASK.state,
        TASK.lease_token,
        TASK.attempt,
        TASK.worker_id,
        db_now().label("now"),
    )
    .select_from(EXPERIMENT.id.table)
    .join(_task, TASK.experiment_id == EXPERIMENT.id)
    .where(TASK.id == sa.bindparam("task_id"))
    .with_for_update(of=_task, key_share=True)
)

FINISH = (
    sa.update(_task)
    .where(TASK.id == sa.bindparam("task_id"))
    .values(
        state=sa.bindparam("b_state"),
        finished_at=sa.bindparam("b_now"),
        lease_expires_at=None,
        metrics=sa.bindparam("b_metrics"),
        score=sa.bindparam("b_score"),
        tell_pending=sa.bindparam("b_tell_pending"),
    )
    .returning(*TASK)
)

# Which of some candidate keys an experiment already has (the unique index answers).
KNOWN_KEYS = sa.select(TASK.candidate_key).where(
    TASK.experiment_id == sa.bindparam("experiment_id"),
    TASK.candidate_key.in_(sa.bindparam("keys", expanding=True)),
)

COUNT_IN_FLIGHT = sa.select(sa.func.count()).where(
    TASK.experiment_id == sa.bindparam("experiment_id"), TASK.state.in_(IN_FLIGHT)
)

# Rows: every column but the clock; one execute with many rows is one multi-row INSERT.
INSERT_TASK = (
    sa.insert(_task).values(created_at=db_now()).returning(TASK.id, sort_by_parameter_order=True)
)

# Bind parameters: `event_params`. SQLAlchemy reserves column names for the VALUES of an insert
# and update, so the update statements above name theirs b_<column>.
ADD_EVENT = sa.insert(_event).values(created_at=db_now())


def event_params(
    task_id: int,
    experiment_id: int,
    kind: str,
    *,
    attempt: int,
    worker_id: int | None,
    detail: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Bind parameters of `ADD_EVENT`."""
    return {
        "task_id": task_id,
        "experiment_id": experiment_id,
        "kind": kind,
        "attempt": attempt,
        "worker_id": worker_id,
        "detail": detail or {},
    }
