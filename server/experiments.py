"""Experiment services: create (validate, then the store inserts), lifecycle through the store,
and the read views: one experiment with counts and best so far, listings, best, Pareto front."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session

from server.config import Settings
from server.db import read_session
from server.errors import NotFoundError
from server.models import EXPERIMENT, TASK, Experiment, Task, TaskState
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
from server.spec import SpecLimits, validate_spec
from server.store import experiments as store
from server.store import intermediate
from server.store.sql import Row


def create_experiment(
    engine: Engine, *, spec: ExperimentCreate, limits: SpecLimits | None = None
) -> ExperimentPublic:
    """Validate (422 naming the field; nothing stored), insert, and queue the first tasks."""
    values = validate_experiment(engine, spec=spec, limits=limits or Settings().spec_limits)
    experiment_id = store.insert(engine, values=values)
    return get_experiment(engine, experiment_id=experiment_id)


def validate_experiment(
    engine: Engine, *, spec: ExperimentCreate, limits: SpecLimits
) -> dict[str, Any]:
    """The experiment's columns once the library accepted its spec (it builds the space and the
    optimizer: library work, no database). `engine` only to run where the other steps run."""
    data = spec.model_dump(mode="json")
    validate_spec(data, limits)
    return _columns(spec, data)


def insert_experiment(engine: Engine, *, values: dict[str, Any]) -> int:
    """Insert validated columns; the caller runs the first refill."""
    return store.insert(engine, values=values, refill_inline=False)


def _columns(spec: ExperimentCreate, data: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": spec.name,
        "spec": data,
        "priority": spec.priority,
        "parallelism": spec.parallelism,
        "lease_seconds": spec.lease_seconds,
        "max_attempts": spec.max_attempts,
        "max_evaluations": spec.budget.max_evaluations,
        "max_seconds": spec.budget.max_seconds,
        "need_gpus": spec.resources.gpus,
        "need_gpu_memory_mb": spec.resources.gpu_memory_mb,
        "need_labels": spec.resources.labels,
    }


def change_status(engine: Engine, *, experiment_id: int, action: str) -> bool:
    """pause, resume or cancel (409 from a status that does not allow it); whether a refill is
    due (after a resume), which the caller runs."""
    return store.change_status(
        engine, experiment_id=experiment_id, action=action, refill_inline=False
    )


def list_experiments(
    engine: Engine, *, offset: int, limit: int, status: str | None
) -> ExperimentsPublic:
    with read_session(engine) as session:
        query = sa.select(Experiment)
        if status is not None:
            query = query.where(EXPERIMENT.status == status)
        count = session.scalar(sa.select(sa.func.count()).select_from(query.subquery())) or 0
        rows = session.scalars(
            query.order_by(EXPERIMENT.id.desc()).offset(offset).limit(limit)
        ).all()
        return ExperimentsPublic(data=[_public(session, e) for e in rows], count=count)


def get_experiment(engine: Engine, *, experiment_id: int) -> ExperimentPublic:
    with read_session(engine) as session:
        return _public(session, _get(session, experiment_id))


def _get(session: Session, experiment_id: int) -> Experiment:
    experiment = session.get(Experiment, experiment_id)
    if experiment is None:
        raise NotFoundError(f"experiment {experiment_id} not found")
    return experiment


def _public(session: Session, experiment: Experiment) -> ExperimentPublic:
    assert experiment.id is not None and experiment.created_at is not None
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
        counts=task_counts(session, experiment.id),
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


def all_task_counts(engine: Engine) -> dict[str, int]:
    """Every experiment's tasks by state (the /metrics scrape), in a read-only unit."""
    with read_session(engine) as session:
        return task_counts(session)


def _best_task(session: Session, experiment_id: int) -> Task | None:
    return session.scalars(
        sa.select(Task)
        .where(
            TASK.experiment_id == experiment_id,
            TASK.state == TaskState.COMPLETED,
            TASK.score.is_not(None),
        )
        .order_by(TASK.score.desc(), TASK.id)
        .limit(1)
    ).first()


def _best(session: Session, experiment: Experiment) -> BestPublic | None:
    assert experiment.id is not None
    task = _best_task(session, experiment.id)
    if task is None or task.score is None or task.id is None:
        return None
    objective = experiment.spec["objectives"][0]
    value = task.score if objective["direction"] == "maximize" else -task.score
    return BestPublic(
        task_id=task.id, metrics=task.metrics or {}, value=value, candidate=task.candidate
    )


def list_tasks(
    engine: Engine, *, experiment_id: int, state: TaskState | None, offset: int, limit: int
) -> TasksPublic:
    with read_session(engine) as session:
        _get(session, experiment_id)
        query = sa.select(Task).where(TASK.experiment_id == experiment_id)
        if state is not None:
            query = query.where(TASK.state == state)
        count = session.scalar(sa.select(sa.func.count()).select_from(query.subquery())) or 0
        rows = session.scalars(query.order_by(TASK.id).offset(offset).limit(limit)).all()
        return TasksPublic(data=tasks_public(session.connection(), rows), count=count)


def tasks_public(connection: Connection, tasks: Any) -> list[TaskPublic]:
    """Task rows (ORM objects or Core rows) as the API shows them, with their intermediate
    metrics read in one query."""
    tasks = list(tasks)
    histories = intermediate.histories_of(connection, [t.id for t in tasks])
    return [task_public(t, histories.get(t.id, {})) for t in tasks]


def task_public(task: Task | Row, history: intermediate.History) -> TaskPublic:
    """One task row and its intermediate metrics as the API shows them."""
    fields = {name: getattr(task, name) for name in _TASK_FIELDS}
    return TaskPublic.model_validate({**fields, "intermediate": intermediate.as_public(history)})


_TASK_FIELDS = [name for name in TaskPublic.model_fields if name != "intermediate"]


def best_task(engine: Engine, *, experiment_id: int) -> TaskPublic:
    with read_session(engine) as session:
        _get(session, experiment_id)
        task = _best_task(session, experiment_id)
        if task is None:
            raise NotFoundError(
                f"experiment {experiment_id} has no completed task with its objective yet"
            )
        return tasks_public(session.connection(), [task])[0]


def pareto_front(engine: Engine, *, experiment_id: int) -> ParetoPublic:
    """Completed tasks that no other completed task dominates on every objective."""
    with read_session(engine) as session:
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
        return ParetoPublic(objectives=objectives, data=tasks_public(session.connection(), front))


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
