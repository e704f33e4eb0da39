"""Refill: the only place the optimizer runs. Under the experiment's lock, tell it the outcomes
waiting for it, ask for candidates up to the plan's room, insert them as tasks and persist its
state in the same commit; complete the experiment when it is done."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Collection
from typing import Any, TypeVar

from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from morphml.optimizers import AcceptsKnown, Candidate, KnownHashes, Optimizer, Outcome
from morphml.optimizers.base import candidate_key
from server.db import db_now, unit
from server.models import EventKind, ExperimentStatus, TaskState
from server.spec import build_optimizer
from server.store import sql as S
from server.store.refill_rule import Budget, RefillPlan, plan_refill
from server.store.sql import Row
from server.wakeup import announce_tasks

log = logging.getLogger("morphml.server")
T = TypeVar("T")
# An optimizer may propose architectures already trained; ask again a few times before
# concluding that the space is exhausted.
ASK_ROUNDS = 3
_OUTCOMES = {
    TaskState.COMPLETED: Outcome.COMPLETED,
    TaskState.FAILED: Outcome.FAILED,
    TaskState.PRUNED: Outcome.PRUNED,
}


class OptimizerFailure(Exception):
    """The optimizer (library code) raised: the experiment fails with its message. Database
    errors and the store's own bugs are never wrapped in it."""


def budget_of(experiment: Row) -> Budget:
    """The budget columns of a `LOCK_EXPERIMENT` or `LOCK_TASK` row."""
    return Budget(
        parallelism=experiment.parallelism,
        max_evaluations=experiment.max_evaluations,
        tasks_created=experiment.tasks_created,
        max_seconds=experiment.max_seconds,
        started_at=experiment.started_at,
    )


def refill(engine: Engine, experiment_id: int) -> None:
    """In a unit of its own: lock the experiment, tell it its queued outcomes and top it up."""
    with unit(engine) as connection:
        refill_locked(connection, experiment_id)


def refill_locked(connection: Connection, experiment_id: int) -> int:
    """`refill` inside a unit; returns the number of tasks created. Locks the experiment row
    (the lock order's second kind of unit, store/__init__.py)."""
    experiment = connection.execute(S.LOCK_EXPERIMENT, {"experiment_id": experiment_id}).first()
    if experiment is None or experiment.status != ExperimentStatus.RUNNING:
        return 0
    view = connection.execute(S.REFILL_VIEW, {"experiment_id": experiment_id}).all()
    plan = plan_refill(
        budget_of(experiment), pending=view[0].pending, running=view[0].running, now=experiment.now
    )
    if not plan.due:
        return 0
    if plan.cancel_pending:
        cancel_tasks(connection, experiment_id, (TaskState.PENDING,), "time budget reached")
    try:
        return _consult(connection, experiment, plan, [row for row in view if row.id is not None])
    except OptimizerFailure as exc:
        fail_experiment(connection, experiment_id, str(exc))
        return 0


def _consult(connection: Connection, experiment: Row, plan: RefillPlan, told: list[Row]) -> int:
    """Tell, ask and insert; persist the optimizer's state and complete the experiment if done."""
    optimizer = _guarded(lambda: _load_optimizer(connection, experiment))
    _guarded(lambda: _tell(optimizer, told))
    if told:
        connection.execute(S.MARK_TOLD, {"task_ids": [row.id for row in told]})
    created, exhausted = _ask_and_insert(connection, experiment, optimizer, plan.room)
    values: dict[str, Any] = {
        "optimizer_state": _guarded(optimizer.state_dict),
        "tasks_created": experiment.tasks_created + created,
    }
    if plan.in_flight + created == 0 and (plan.may_complete or exhausted):
        values.update(status=ExperimentStatus.COMPLETED, finished_at=db_now())
    connection.execute(S.SET_EXPERIMENT.values(**values), {"experiment_id": experiment.id})
    return created


def _guarded(call: Callable[[], T]) -> T:
    """Run library code; what it raises (other than a database error) is the optimizer's."""
    try:
        return call()
    except SQLAlchemyError:
        raise
    except Exception as exc:
        log.exception("optimizer failed")
        raise OptimizerFailure(f"optimizer: {type(exc).__name__}: {exc}"[:2000]) from exc


def _load_optimizer(connection: Connection, experiment: Row) -> Optimizer:
    optimizer = build_optimizer(experiment.spec)
    state = connection.execute(S.OPTIMIZER_STATE, {"experiment_id": experiment.id}).scalar()
    if state is not None:
        optimizer.load_state_dict(state)
    if isinstance(optimizer, AcceptsKnown):
        # The task table remembers every architecture asked, so the state need not.
        optimizer.known = _tasks_of(connection, experiment.id)
    return optimizer


def _tell(optimizer: Optimizer, outcomes: list[Row]) -> None:
    """Every queued outcome, in the order the tasks finished."""
    for row in outcomes:
        outcome = _OUTCOMES[TaskState(row.state)]
        metrics = None if outcome is Outcome.FAILED else row.metrics
        optimizer.tell(Candidate.from_dict(row.candidate), metrics, outcome)


def _tasks_of(connection: Connection, experiment_id: int) -> KnownHashes:
    """Which of some architecture hashes the experiment already has a budget-less task for."""

    def known(hashes: Collection[str]) -> set[str]:
        keys = {candidate_key(arch_hash, None): arch_hash for arch_hash in hashes}
        found = connection.execute(S.KNOWN_KEYS, {"experiment_id": experiment_id, "keys": keys})
        return {keys[key] for key in found.scalars()}

    return known


def _ask_and_insert(
    connection: Connection, experiment: Row, optimizer: Optimizer, room: int
) -> tuple[int, bool]:
    """Ask for `room` new candidates; (tasks created, whether the optimizer ran dry)."""
    created = 0
    for _ in range(ASK_ROUNDS if room > 0 else 0):
        candidates = _guarded(functools.partial(optimizer.ask, room - created))
        if not candidates:
            return created, True
        created += _insert_new(connection, experiment, candidates)
        if created >= room:
            break
    return created, created == 0


def _insert_new(connection: Connection, experiment: Row, candidates: list[Candidate]) -> int:
    """Insert the candidates not already tried in this experiment (same architecture and
    budget), as one multi-row INSERT of tasks and one of their `created` events."""
    keys = {candidate.key: candidate for candidate in candidates}
    found = connection.execute(S.KNOWN_KEYS, {"experiment_id": experiment.id, "keys": list(keys)})
    known = set(found.scalars())
    fresh = [candidate for key, candidate in keys.items() if key not in known]
    if not fresh:
        return 0
    rows = [_task_row(experiment, candidate) for candidate in fresh]
    task_ids = connection.execute(S.INSERT_TASK, rows).scalars().all()
    events = [
        S.event_params(task_id, experiment.id, EventKind.CREATED, attempt=1, worker_id=None)
        for task_id in task_ids
    ]
    connection.execute(S.ADD_EVENT, events)
    announce_tasks(connection, len(fresh))
    return len(fresh)


def _task_row(experiment: Row, candidate: Candidate) -> dict[str, Any]:
    return {
        "experiment_id": experiment.id,
        "state": TaskState.PENDING,
        "candidate": candidate.to_dict(),
        "candidate_key": candidate.key,
        "budget": candidate.budget,
        "max_attempts": experiment.max_attempts,
        "attempt": 1,
        "tell_pending": False,
    }


def cancel_tasks(
    connection: Connection, experiment_id: int, states: tuple[TaskState, ...], reason: str
) -> int:
    """Cancel the experiment's tasks in `states` (their lease tokens then read `stop`)."""
    params = {"b_experiment_id": experiment_id, "states": list(states), "b_error": reason}
    rows = connection.execute(S.CANCEL_TASKS, params).all()
    events = [
        S.event_params(
            task_id,
            experiment_id,
            EventKind.CANCELLED,
            attempt=attempt,
            worker_id=worker_id,
            detail={"reason": reason},
        )
        for task_id, attempt, worker_id in rows
    ]
    if events:
        connection.execute(S.ADD_EVENT, events)
    return len(rows)


def fail_experiment(connection: Connection, experiment_id: int, error: str) -> None:
    cancel_tasks(connection, experiment_id, S.IN_FLIGHT, "optimizer failed")
    values = {"status": ExperimentStatus.FAILED, "error": error, "finished_at": db_now()}
    connection.execute(S.SET_EXPERIMENT.values(**values), {"experiment_id": experiment_id})
