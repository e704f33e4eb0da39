"""Experiment services: create, read (counts, best so far), lifecycle, tasks, best, Pareto front."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from server.db import db_now, transaction
from server.errors import ConflictError, NotFoundError
from server.models import EXPERIMENT, TASK, Experiment, ExperimentStatus, Task, TaskState
from server.orchestrator import (
    cancel_tasks,
    feed_locked,
    insert_experiment,
    lock_experiment,
    validate_spec,
)
from server.pruning import validate_pruner
from server.schemas import (
    BestPublic,
    BudgetSpec,
    ExperimentCreate,
    ExperimentPublic,
    ExperimentsPublic,
    ObjectiveSpec,
    ParetoPublic,
    TaskPublic,
    TasksPublic,
)
from server.statements import IN_FLIGHT, Row
from server.wakeup import announce_tasks


def create_experiment(engine: Engine, *, spec: ExperimentCreate) -> ExperimentPublic:
    """Validate (422 naming the field; nothing stored), insert, and queue the first tasks."""
    data = validate_spec(spec)
    validate_pruner(data["pruner"], data["objectives"])
    with transaction(engine) as session:
        experiment = insert_experiment(session=session, spec=spec, data=data)
        session.flush()
        return _public(session, experiment)


def list_experiments(
    engine: Engine, *, offset: int, limit: int, status: str | None
) -> ExperimentsPublic:
    with transaction(engine) as session:
        query = sa.select(Experiment)
        if status is not None:
            query = query.where(EXPERIMENT.status == status)
        count = session.scalar(sa.select(sa.func.count()).select_from(query.subquery())) or 0
        rows = session.scalars(
            query.order_by(EXPERIMENT.id.desc()).offset(offset).limit(limit)
        ).all()
        return ExperimentsPublic(data=[_public(session, e) for e in rows], count=count)


def get_experiment(engine: Engine, *, experiment_id: int) -> ExperimentPublic:
    with transaction(engine) as session:
        return _public(session, _get(session, experiment_id))


def _get(session: Session, experiment_id: int) -> Experiment:
    experiment = session.get(Experiment, experiment_id)
    if experiment is None:
        raise NotFoundError(f"experiment {experiment_id} not found")
    return experiment


def _public(session: Session, experiment: Experiment) -> ExperimentPublic:
    assert experiment.id is not None and experiment.created_at is not None
    counts = task_counts(session, experiment.id)
    return ExperimentPublic(
        id=experiment.id,
        name=experiment.name,
        status=experiment.status,
        priority=experiment.priority,
        parallelism=experiment.parallelism,
        lease_seconds=experiment.lease_seconds,
        max_attempts=experiment.max_attempts,
        budget=BudgetSpec(
            max_evaluations=experiment.max_evaluations, max_seconds=experiment.max_seconds
        ),
        spec=experiment.spec,
        tasks_created=experiment.tasks_created,
        counts=counts,
        best=_best(session, experiment),
        error=experiment.error,
        created_at=experiment.created_at,
        started_at=experiment.started_at,
        finished_at=experiment.finished_at,
    )


def task_counts(session: Session, experiment_id: int | None = None) -> dict[str, int]:
    """Tasks by state (every state present, zeros included), of one experiment or all."""
    query = sa.select(TASK.state, sa.func.count()).group_by(TASK.state)
    if experiment_id is not None:
        query = query.where(TASK.experiment_id == experiment_id)
    found: dict[str, int] = {state: int(count) for state, count in session.execute(query)}
    return {state.value: found.get(state.value, 0) for state in TaskState}


def _best(session: Session, experiment: Experiment) -> BestPublic | None:
    task = session.scalars(
        sa.select(Task)
        .where(
            TASK.experiment_id == experiment.id,
            TASK.state == TaskState.COMPLETED,
            TASK.score.is_not(None),
        )
        .order_by(TASK.score.desc(), TASK.id)
        .limit(1)
    ).first()
    if task is None or task.score is None or task.id is None:
        return None
    objective = experiment.spec["objectives"][0]
    value = task.score if objective["direction"] == "maximize" else -task.score
    return BestPublic(
        task_id=task.id, metrics=task.metrics or {}, value=value, candidate=task.candidate
    )


def change_status(engine: Engine, *, experiment_id: int, action: str) -> ExperimentPublic:
    """pause: running -> paused; resume: paused -> running; cancel: running|paused -> cancelled."""
    with transaction(engine) as session:
        experiment = lock_experiment(session, experiment_id)
        _LIFECYCLE[action](session, experiment)
        session.flush()
        return _public(session, experiment)


def _pause(session: Session, experiment: Experiment) -> None:
    _require_status(experiment, ExperimentStatus.RUNNING, "pause")
    experiment.status = ExperimentStatus.PAUSED


def _resume(session: Session, experiment: Experiment) -> None:
    _require_status(experiment, ExperimentStatus.PAUSED, "resume")
    experiment.status = ExperimentStatus.RUNNING
    waiting = task_counts(session, experiment.id).get(TaskState.PENDING.value, 0)
    if waiting:
        announce_tasks(session, waiting)  # its pending tasks are claimable again
    feed_locked(session, experiment)


def _cancel(session: Session, experiment: Experiment) -> None:
    _require_status(experiment, (ExperimentStatus.RUNNING, ExperimentStatus.PAUSED), "cancel")
    cancel_tasks(session, experiment, IN_FLIGHT, reason="experiment cancelled")
    experiment.status = ExperimentStatus.CANCELLED
    experiment.finished_at = session.execute(sa.select(db_now())).scalar_one()


def _require_status(experiment: Experiment, allowed: Any, action: str) -> None:
    allowed = allowed if isinstance(allowed, tuple) else (allowed,)
    if experiment.status not in allowed:
        raise ConflictError(f"cannot {action} an experiment that is {experiment.status}")


_LIFECYCLE = {"pause": _pause, "resume": _resume, "cancel": _cancel}


def list_tasks(
    engine: Engine, *, experiment_id: int, state: TaskState | None, offset: int, limit: int
) -> TasksPublic:
    with transaction(engine) as session:
        _get(session, experiment_id)
        query = sa.select(Task).where(TASK.experiment_id == experiment_id)
        if state is not None:
            query = query.where(TASK.state == state)
        count = session.scalar(sa.select(sa.func.count()).select_from(query.subquery())) or 0
        rows = session.scalars(query.order_by(TASK.id).offset(offset).limit(limit)).all()
        return TasksPublic(data=[task_public(t) for t in rows], count=count)


def task_public(task: Task | Row) -> TaskPublic:
    """A task row (ORM object or Core row) as the API shows it."""
    return TaskPublic.model_validate(task, from_attributes=True)


def best_task(engine: Engine, *, experiment_id: int) -> TaskPublic:
    with transaction(engine) as session:
        best = _best(session, _get(session, experiment_id))
        if best is None:
            raise NotFoundError(
                f"experiment {experiment_id} has no completed task with its objective yet"
            )
        task = session.get(Task, best.task_id)
        assert task is not None
        return task_public(task)


def pareto_front(engine: Engine, *, experiment_id: int) -> ParetoPublic:
    """Completed tasks that no other completed task dominates on every objective."""
    with transaction(engine) as session:
        experiment = _get(session, experiment_id)
        objectives = [ObjectiveSpec.model_validate(o) for o in experiment.spec["objectives"]]
        tasks = session.scalars(
            sa.select(Task)
            .where(TASK.experiment_id == experiment_id, TASK.state == TaskState.COMPLETED)
            .order_by(TASK.id)
        ).all()
        points = [(t, _signed_vector(t.metrics or {}, objectives)) for t in tasks]
        scored = [(t, v) for t, v in points if v is not None]
        front = [t for t, v in scored if not any(_dominates(w, v) for _, w in scored)]
        return ParetoPublic(objectives=objectives, data=[task_public(t) for t in front])


def _signed_vector(
    metrics: dict[str, float], objectives: list[ObjectiveSpec]
) -> list[float] | None:
    if any(o.metric not in metrics for o in objectives):
        return None
    return [metrics[o.metric] * (1.0 if o.direction == "maximize" else -1.0) for o in objectives]


def _dominates(a: list[float], b: list[float]) -> bool:
    return all(x >= y for x, y in zip(a, b, strict=True)) and any(
        x > y for x, y in zip(a, b, strict=True)
    )
