"""All lease SQL: claim, heartbeat, complete, fail and requeue_expired, each one transaction.

Every transition is guarded in SQL (`state` and `lease_token` in the WHERE clause or checked
under a row lock), so a worker presumed dead can never overwrite its successor's work. Units
that tell the optimizer lock the experiment row *before* the task row, the same order that
cancel uses, so Postgres never sees the two wait on each other.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from server import statements as S
from server.db import db_now, transaction, unit
from server.errors import ConflictError, NotFoundError, StaleLeaseError
from server.models import (
    EXPERIMENT,
    TASK,
    WORKER,
    EventKind,
    Experiment,
    Task,
    TaskState,
    Worker,
    WorkerStatus,
)
from server.orchestrator import (
    TELLING,
    UNLESS_REFILLING,
    add_event,
    lock_experiment,
    record_outcome_locked,
    refill,
    refill_due,
)
from server.statements import Row
from server.wakeup import announce_tasks

log = logging.getLogger("morphml.server")
# Kept out of the intermediate history so a long run cannot grow a task row without bound.
MAX_INTERMEDIATE_STEPS = 1000


@dataclass(frozen=True)
class Claim:
    """A claimed task with what the worker needs from its experiment."""

    task: Row  # statements.CLAIM's RETURNING columns
    spec: dict[str, Any]
    lease_seconds: float


@dataclass(frozen=True)
class Beat:
    """A heartbeat's outcome: the new lease expiry, or why to stop; `task` (as it now stands)
    only from the general path, which is the one that records metrics."""

    lease_expires_at: datetime | None
    stop_reason: str | None
    task: Task | None = None


@dataclass(frozen=True)
class Miss:
    """No claim; `unfit` when pending tasks exist that this worker cannot run (others might)."""

    unfit: bool


def claim_task(
    engine: Engine,
    *,
    worker_id: int,
    free_gpus: int | None,
    free_gpu_memory_mb: int | None,
    labels: dict[str, str] | None,
) -> Claim | None:
    """Lease the best-fitting pending task to the worker, or None when nothing fits."""
    found = claim_or_miss(
        engine,
        worker_id=worker_id,
        free_gpus=free_gpus,
        free_gpu_memory_mb=free_gpu_memory_mb,
        labels=labels,
    )
    return found if isinstance(found, Claim) else None


def claim_or_miss(
    engine: Engine,
    *,
    worker_id: int,
    free_gpus: int | None,
    free_gpu_memory_mb: int | None,
    labels: dict[str, str] | None,
) -> Claim | Miss:
    """`claim_task`, saying on a miss whether pending work was left for other workers."""
    with unit(engine) as connection:
        worker = connection.execute(S.TOUCH_WORKER, {"worker_id": worker_id}).first()
        if worker is None:
            raise NotFoundError(f"worker {worker_id} not registered")
        gpus, memory = _free_resources(worker.resources or {}, free_gpus, free_gpu_memory_mb)
        wanted = (worker.labels or {}) if labels is None else labels
        order, unfit = _claim_order(connection, gpus=gpus, memory=memory, labels=wanted)
        for experiment in order:
            params = {
                "b_experiment_id": experiment.id,
                "b_worker_id": worker_id,
                "b_lease_token": secrets.token_urlsafe(24),
            }
            task = connection.execute(S.CLAIM, params).first()
            if task is not None:
                event = S.event_params(
                    task.id,
                    task.experiment_id,
                    EventKind.CLAIMED,
                    attempt=task.attempt,
                    worker_id=worker_id,
                )
                connection.execute(S.ADD_EVENT, event)
                return Claim(
                    task=task, spec=experiment.spec, lease_seconds=experiment.lease_seconds
                )
        return Miss(unfit=unfit)


def _task_event(
    session: Session, task: Task, kind: EventKind, detail: dict[str, Any] | None = None
) -> None:
    """Record `kind` for `task` as it stands now (its attempt and worker)."""
    assert task.id is not None
    add_event(
        session,
        task_id=task.id,
        experiment_id=task.experiment_id,
        kind=kind,
        attempt=task.attempt,
        worker_id=task.worker_id,
        detail=detail,
    )


def _claim_order(
    connection: Connection, *, gpus: int, memory: int, labels: dict[str, str]
) -> tuple[list[Row], bool]:
    """Running experiments with pending tasks this worker can run, best first; and whether
    some running experiment has pending tasks it cannot run.

    Order: priority, then fair share (fewest running tasks), then the older experiment. Done in
    Python over a handful of rows: the alternative, ranking every pending task in SQL, costs a
    sort of the whole queue per claim.
    """
    load = {(e, state): int(n) for e, state, n in connection.execute(S.IN_FLIGHT_COUNTS)}
    running = connection.execute(S.RUNNING_EXPERIMENTS)
    with_pending = [e for e in running if load.get((e.id, TaskState.PENDING), 0) > 0]
    fitting = [e for e in with_pending if _fits(e, gpus, memory, labels)]
    ordered = sorted(
        fitting,
        key=lambda e: (-e.priority, load.get((e.id, TaskState.RUNNING), 0), e.id),
    )
    return ordered, len(fitting) < len(with_pending)


def _fits(experiment: Row, gpus: int, memory: int, labels: dict[str, str]) -> bool:
    needs_labels = experiment.need_labels or {}
    return (
        experiment.need_gpus <= gpus
        and experiment.need_gpu_memory_mb <= memory
        and all(labels.get(key) == value for key, value in needs_labels.items())
    )


def _free_resources(
    resources: dict[str, Any], gpus: int | None, memory: int | None
) -> tuple[int, int]:
    """What the worker says is free, defaulting to everything it registered."""
    registered = resources.get("gpus") or []
    if gpus is None:
        gpus = len(registered)
    if memory is None:
        memory = max((int(g.get("memory_mb", 0)) for g in registered), default=0)
    return gpus, memory


def heartbeat(
    engine: Engine,
    *,
    task_id: int,
    lease_token: str,
    progress: float | None,
    step: int | None,
    metrics: dict[str, float] | None,
) -> Beat:
    """Extend the lease and record progress; a cancelled or pruned task answers stop."""
    if not metrics:
        with unit(engine) as connection:
            params = {"task_id": task_id, "b_lease_token": lease_token}
            beat = connection.execute(S.BEAT, {**params, "b_progress": progress, "b_step": step})
            row = beat.first()
            if row is not None:
                connection.execute(S.TOUCH_WORKER, {"worker_id": row.worker_id})
                return Beat(lease_expires_at=row.lease_expires_at, stop_reason=None)
    return _heartbeat_in_general(engine, task_id, lease_token, progress, step, metrics)


def _heartbeat_in_general(
    engine: Engine,
    task_id: int,
    lease_token: str,
    progress: float | None,
    step: int | None,
    metrics: dict[str, float] | None,
) -> Beat:
    """Every case: metrics to record, a stale token (409), a stopped or unknown task."""
    with transaction(engine) as session:
        task, now, lease_expires_at = _task_for_heartbeat(session, task_id, lease_token)
        if task.state in (TaskState.CANCELLED, TaskState.PRUNED):
            return Beat(lease_expires_at=None, stop_reason=str(task.state), task=task)
        if task.state != TaskState.RUNNING:
            raise ConflictError(f"task {task_id} is {task.state}")
        task.heartbeat_at, task.lease_expires_at = now, lease_expires_at
        task.progress, task.step = progress, step
        if metrics:
            task.intermediate = _with_step(task.intermediate, step, metrics)
        if task.worker_id is not None:
            session.connection().execute(S.TOUCH_WORKER, {"worker_id": task.worker_id})
        return Beat(lease_expires_at=lease_expires_at, stop_reason=None, task=task)


def _with_step(
    intermediate: dict[str, Any], step: int | None, metrics: dict[str, float]
) -> dict[str, Any]:
    """History of intermediate metrics keyed by step (the pruner compares tasks step by step)."""
    history = dict(intermediate)
    key = str(step if step is not None else len(history))
    history[key] = metrics
    if len(history) > MAX_INTERMEDIATE_STEPS:
        history.pop(next(iter(history)))
    return history


def _task_for_heartbeat(
    session: Session, task_id: int, lease_token: str
) -> tuple[Task, datetime, datetime]:
    """The task locked, with the database's now and now + lease, in one statement."""
    row = session.execute(
        sa.select(Task, db_now(), db_now(EXPERIMENT.lease_seconds))
        .join(Experiment, EXPERIMENT.id == TASK.experiment_id)
        .where(TASK.id == task_id)
        .with_for_update(of=Task)  # type: ignore[arg-type]
    ).first()
    if row is None:
        raise NotFoundError(f"task {task_id} not found")
    _check_token(task_id, row[0].lease_token, lease_token)
    return row[0], row[1], row[2]


@dataclass(frozen=True)
class Locked:
    """A task and its experiment, both locked, and the database clock when they were."""

    experiment: Experiment
    task: Task
    now: datetime


def _lock_task(session: Session, task_id: int, lease_token: str) -> Locked:
    """Experiment then task locked in one statement (experiment first in FROM: locked first).

    FOR NO KEY UPDATE: claims insert events whose foreign keys take KEY SHARE on these rows;
    a plain FOR UPDATE would make them wait for this unit.
    """
    row = session.execute(
        sa.select(Experiment, Task, db_now())
        .join(Task, TASK.experiment_id == EXPERIMENT.id)
        .where(TASK.id == task_id)
        .options(UNLESS_REFILLING)
        .with_for_update(key_share=True)
    ).first()
    if row is None:
        raise NotFoundError(f"task {task_id} not found")
    _check_token(task_id, row[1].lease_token, lease_token)
    return Locked(experiment=row[0], task=row[1], now=row[2])


def _check_token(task_id: int, current: str | None, presented: str) -> None:
    if current is None or not secrets.compare_digest(current, presented):
        raise StaleLeaseError(
            f"task {task_id}: lease token is not current (the task was reassigned or finished)"
        )


def complete_task(
    engine: Engine, *, task_id: int, lease_token: str, metrics: dict[str, float]
) -> Row:
    """Record final metrics; the same token again returns the task unchanged (idempotent).

    The outcome is queued for the optimizer (`tell_pending`) in this unit; the refill that
    tells it runs after the commit, in its own unit, when this one saw it due. Concurrent
    completes each count the others as still running, so a due refill can be missed; the
    reaper's pass tops every running experiment up within `reaper_interval_seconds`.
    """
    with unit(engine) as connection:
        locked = connection.execute(S.LOCK_FOR_OUTCOME, {"task_id": task_id}).first()
        if locked is None:
            raise NotFoundError(f"task {task_id} not found")
        _check_token(task_id, locked.lease_token, lease_token)
        if locked.state == TaskState.COMPLETED:
            return connection.execute(sa.select(*TASK).where(TASK.id == task_id)).one()
        if locked.state != TaskState.RUNNING:
            raise ConflictError(
                f"task {task_id} is {locked.state}; its result is not needed any more"
            )
        tell = locked.status in TELLING
        params = {"task_id": task_id, "b_state": TaskState.COMPLETED, "b_now": locked.now}
        params.update(b_metrics=metrics, b_score=_score(locked.spec, metrics), b_tell_pending=tell)
        task = connection.execute(S.FINISH, params).one()
        event = S.event_params(
            task_id,
            task.experiment_id,
            EventKind.COMPLETED,
            attempt=task.attempt,
            worker_id=task.worker_id,
        )
        connection.execute(S.ADD_EVENT, event)
        due = tell and refill_due(connection, locked)
    if due:
        _refill_after(engine, task.experiment_id)
    return task


def _refill_after(engine: Engine, experiment_id: int) -> None:
    """The refill a committed outcome made due. Its failure must not turn the committed complete
    into an error (the worker would retry a complete that worked): the reaper's pass retries it."""
    try:
        refill(engine, experiment_id, unless_busy=True)
    except SQLAlchemyError as exc:
        log.warning(
            "experiment %s: refill after a complete failed (%s); the reaper retries",
            experiment_id,
            exc,
        )


def _score(spec: dict[str, Any], metrics: dict[str, float]) -> float | None:
    """The first objective, signed so that bigger is better (best = ORDER BY score DESC)."""
    objective = spec["objectives"][0]
    value = metrics.get(objective["metric"])
    if value is None:
        return None
    return value if objective["direction"] == "maximize" else -value


def _finish_task(
    session: Session, task: Task, state: TaskState, now: datetime | None = None, **values: Any
) -> None:
    task.state = state
    task.finished_at = now or session.execute(sa.select(db_now())).scalar_one()
    task.lease_expires_at = None
    for name, value in values.items():
        setattr(task, name, value)


def fail_task(
    engine: Engine, *, task_id: int, lease_token: str, error: str, retryable: bool
) -> Task:
    """Retry (pending, attempt + 1) while attempts remain and the error is retryable, else fail."""
    with transaction(engine) as session:
        locked = _lock_task(session, task_id, lease_token)
        experiment, task = locked.experiment, locked.task
        if task.state != TaskState.RUNNING:
            raise ConflictError(f"task {task_id} is {task.state}")
        _release_or_fail(
            session, experiment, task, error=error, retry=retryable, kind=EventKind.RETRIED
        )
        return task


def _release_or_fail(
    session: Session,
    experiment: Experiment,
    task: Task,
    *,
    error: str,
    retry: bool,
    kind: EventKind,
) -> None:
    """Back to pending with attempt + 1 if allowed, otherwise failed and told to the optimizer."""
    assert task.id is not None
    worker_id = task.worker_id
    if retry and task.attempt < task.max_attempts:
        task.state, task.attempt, task.error = TaskState.PENDING, task.attempt + 1, error
        task.lease_token = task.lease_expires_at = task.worker_id = None
        add_event(
            session,
            task_id=task.id,
            experiment_id=task.experiment_id,
            kind=kind,
            attempt=task.attempt - 1,
            worker_id=worker_id,
            detail={"error": error[:500]},
        )
        announce_tasks(session)
        return
    _finish_task(session, task, TaskState.FAILED, error=error)
    add_event(
        session,
        task_id=task.id,
        experiment_id=task.experiment_id,
        kind=EventKind.FAILED,
        attempt=task.attempt,
        worker_id=worker_id,
        detail={"error": error[:500], "cause": kind.value},
    )
    record_outcome_locked(session, experiment, task)


def prune_task(engine: Engine, *, task_id: int, lease_token: str, reason: str) -> Task | None:
    """Stop a running task on the pruner's word; None if it is no longer this lease's to stop."""
    with transaction(engine) as session:
        locked = _lock_task(session, task_id, lease_token)
        experiment, task = locked.experiment, locked.task
        if task.state != TaskState.RUNNING:
            return None
        last = _last_metrics(task.intermediate)
        _finish_task(
            session,
            task,
            TaskState.PRUNED,
            now=locked.now,
            metrics=last,
            score=_score(experiment.spec, last),
            error=reason,
        )
        _task_event(session, task, EventKind.PRUNED, {"reason": reason})
        record_outcome_locked(session, experiment, task)
        return task


def _last_metrics(intermediate: dict[str, Any]) -> dict[str, float]:
    if not intermediate:
        return {}
    last_step = max(intermediate, key=lambda step: int(step) if step.isdigit() else -1)
    return dict(intermediate[last_step])


def requeue_expired(engine: Engine, *, limit: int = 100) -> int:
    """Return expired leases to pending (attempt + 1), or fail them when attempts are exhausted."""
    with transaction(engine) as session:
        expired = session.execute(
            sa.select(TASK.id, TASK.experiment_id)
            .where(TASK.state == TaskState.RUNNING, TASK.lease_expires_at < db_now())
            .order_by(TASK.lease_expires_at)
            .limit(limit)
        ).all()
    return sum(_requeue_one(engine, task_id, experiment_id) for task_id, experiment_id in expired)


def _requeue_one(engine: Engine, task_id: int, experiment_id: int) -> int:
    with transaction(engine) as session:
        experiment = lock_experiment(session, experiment_id)
        task = session.get(Task, task_id, with_for_update=True)
        still_expired = session.scalar(
            sa.select(sa.func.count()).where(
                TASK.id == task_id,
                TASK.state == TaskState.RUNNING,
                TASK.lease_expires_at < db_now(),
            )
        )
        if task is None or not still_expired:
            return 0  # a heartbeat or another replica got there first
        _release_or_fail(
            session,
            experiment,
            task,
            error="lease expired (no heartbeat)",
            retry=True,
            kind=EventKind.LEASE_EXPIRED,
        )
        return 1


def mark_workers_offline(engine: Engine, *, silent_seconds: float) -> int:
    with transaction(engine) as session:
        result = session.execute(
            sa.update(Worker)
            .where(
                WORKER.status == WorkerStatus.ONLINE, WORKER.last_seen_at < db_now(-silent_seconds)
            )
            .values(status=WorkerStatus.OFFLINE)
        )
        return int(result.rowcount or 0)  # type: ignore[attr-defined]
