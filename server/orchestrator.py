"""Keep each running experiment fed: ask its optimizer, tell it outcomes, persist its state.

Every function here expects an open transaction (`session`) in which the experiment row is
locked (`lock_experiment`), so two replicas never ask the same experiment's optimizer at once and
the optimizer state is written in the same commit as the tasks it produced.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session, defer

from morphml.errors import MorphMLError
from morphml.evaluators import EVALUATOR_KINDS
from morphml.optimizers import (
    AcceptsKnown,
    Candidate,
    KnownHashes,
    Optimizer,
    Outcome,
    make_optimizer,
)
from morphml.space import space_from_dict
from server.db import db_now, transaction
from server.errors import InvalidSpecError, NotFoundError
from server.models import TASK, EventKind, Experiment, ExperimentStatus, Task, TaskState
from server.schemas import ExperimentCreate
from server.statements import (
    ADD_EVENT,
    COUNT_IN_FLIGHT,
    IN_FLIGHT,
    INSERT_TASK,
    KNOWN_KEYS,
    Row,
    event_params,
)
from server.wakeup import announce_tasks

log = logging.getLogger("morphml.server")
# Experiments whose optimizer is still told outcomes (a paused one resumes with them).
TELLING = (ExperimentStatus.RUNNING, ExperimentStatus.PAUSED)
# An optimizer may propose architectures already trained; ask again a few times before
# concluding that the space is exhausted.
ASK_ROUNDS = 3


def build_optimizer(spec: dict[str, Any]) -> Optimizer:
    """The experiment's optimizer, fresh; library errors name the offending spec field."""
    space = space_from_dict(spec["search_space"])
    optimizer = spec["optimizer"]
    return make_optimizer(
        optimizer["name"],
        space,
        objectives=spec["objectives"],
        seed=spec.get("seed"),
        **optimizer["params"],
    )


def validate_spec(spec: ExperimentCreate) -> dict[str, Any]:
    """The spec as stored JSON, after the library accepted the space, optimizer and evaluator."""
    data = spec.model_dump(mode="json")
    if spec.evaluator.kind not in EVALUATOR_KINDS:
        raise InvalidSpecError(
            f"evaluator.kind: unknown kind {spec.evaluator.kind!r}; "
            f"known: {sorted(EVALUATOR_KINDS)}"
        )
    try:
        build_optimizer(data)
    except MorphMLError as exc:
        raise InvalidSpecError(str(exc)) from None
    return data


# The optimizer state grows with the history (megabytes at 100k tasks): load it only when a
# refill needs it (the first access to the attribute loads it, in the same transaction).
UNLESS_REFILLING = defer(Experiment.optimizer_state)  # type: ignore[arg-type]


def lock_experiment(session: Session, experiment_id: int) -> Experiment:
    """The experiment row, locked until commit (SQLite: BEGIN IMMEDIATE already serialises)."""
    experiment = _locked(session, experiment_id, skip_locked=False)
    if experiment is None:
        raise NotFoundError(f"experiment {experiment_id} not found")
    return experiment


def _locked(session: Session, experiment_id: int, *, skip_locked: bool) -> Experiment | None:
    """The experiment, locked; None if missing or, with `skip_locked`, held by another unit."""
    # FOR NO KEY UPDATE: claims insert events whose foreign key takes KEY SHARE on this row;
    # a plain FOR UPDATE would make every claim wait for a completion of the same experiment.
    return session.get(
        Experiment,
        experiment_id,
        with_for_update={"key_share": True, "skip_locked": skip_locked},
        options=[UNLESS_REFILLING],
    )


def insert_experiment(
    *, session: Session, spec: ExperimentCreate, data: dict[str, Any]
) -> Experiment:
    """Insert a validated spec (`data` from `validate_spec`) and queue its first tasks."""
    experiment = Experiment(
        name=spec.name,
        status=ExperimentStatus.RUNNING,
        spec=data,
        priority=spec.priority,
        parallelism=spec.parallelism,
        lease_seconds=spec.lease_seconds,
        max_attempts=spec.max_attempts,
        max_evaluations=spec.budget.max_evaluations,
        max_seconds=spec.budget.max_seconds,
        need_gpus=spec.resources.gpus,
        need_gpu_memory_mb=spec.resources.gpu_memory_mb,
        need_labels=spec.resources.labels,
        created_at=session.scalar(sa.select(db_now())),
    )
    experiment.started_at = experiment.created_at
    session.add(experiment)
    session.flush()
    feed_locked(session, experiment)
    return experiment


def record_outcome_locked(session: Session, experiment: Experiment, task: Task) -> None:
    """Queue how `task` ended for the optimizer; refill (which tells it) once the queue runs low.

    Telling, asking and rewriting the optimizer state on every outcome costs a load and a dump
    of a state that grows with the history; a refill does it once for a batch of outcomes.
    The outcome is the task's final state and metrics, read back at the refill.
    """
    if experiment.status not in TELLING:
        return
    task.tell_pending = True
    feed_locked(session, experiment)


def feed_locked(session: Session, experiment: Experiment) -> int:
    """Refill up to `parallelism` within budget once in-flight tasks fall to the low-water
    mark, telling pending outcomes first; complete the experiment when it is done."""
    if experiment.status != ExperimentStatus.RUNNING:
        return 0
    out_of_time = _out_of_time(session, experiment)
    if out_of_time:
        _cancel_pending(session, experiment)
    in_flight = _count_in_flight(session, experiment.id)
    room = 0 if out_of_time else _room(experiment.parallelism, _left(experiment), in_flight)
    done = in_flight == 0 and (out_of_time or room == 0)
    if room == 0 and not done:
        return 0
    try:
        optimizer = _load_optimizer(session, experiment)
        _tell_pending(session, experiment, optimizer)
        created, exhausted = _ask_and_insert(session, experiment, optimizer, room)
    except Exception as exc:
        _fail_experiment(session, experiment, exc)
        return 0
    experiment.optimizer_state = optimizer.state_dict()
    if in_flight + created == 0 and (done or exhausted):
        _finish(session, experiment, ExperimentStatus.COMPLETED)
    return created


def refill(engine: Engine, experiment_id: int, *, unless_busy: bool = False) -> None:
    """In a unit of its own: lock the experiment, tell it its queued outcomes and top it up.

    `unless_busy`: return at once when another unit holds the experiment (a refill under way;
    outcomes it did not see stay queued for the next one) instead of queueing behind it.
    """
    with transaction(engine) as session:
        experiment = _locked(session, experiment_id, skip_locked=unless_busy)
        if experiment is not None:
            feed_locked(session, experiment)


def refill_due(connection: Connection, locked: Row) -> bool:
    """Whether `feed_locked` would do anything now, from the columns `statements.LOCK_FOR_OUTCOME`
    read: the usual answer (no) then costs one COUNT instead of loading the experiment."""
    if locked.status != ExperimentStatus.RUNNING:
        return False
    if _past(locked.max_seconds, locked.started_at, locked.now):
        return True
    in_flight = _count_in_flight(connection, locked.experiment_id)
    left = None if locked.max_evaluations is None else locked.max_evaluations - locked.tasks_created
    return in_flight == 0 or _room(locked.parallelism, left, in_flight) > 0


def _left(experiment: Experiment) -> int | None:
    """Evaluations the budget still allows (None: no limit)."""
    if experiment.max_evaluations is None:
        return None
    return experiment.max_evaluations - experiment.tasks_created


def _room(parallelism: int, left: int | None, in_flight: int) -> int:
    """How many tasks to add now: none above the low-water mark, else back up to parallelism."""
    low_water = parallelism - max(1, parallelism // 4)
    if in_flight > low_water:
        return 0
    room = parallelism - in_flight
    if left is not None:
        room = min(room, left)
    return max(room, 0)


_OUTCOMES = {
    TaskState.COMPLETED: Outcome.COMPLETED,
    TaskState.FAILED: Outcome.FAILED,
    TaskState.PRUNED: Outcome.PRUNED,
}


def _tell_pending(session: Session, experiment: Experiment, optimizer: Optimizer) -> None:
    """Tell the optimizer every queued outcome, in the order they finished, and mark them told."""
    rows = session.execute(
        sa.select(TASK.id, TASK.state, TASK.candidate, TASK.metrics)
        .where(TASK.tell_pending.is_(True), TASK.experiment_id == experiment.id)
        .order_by(TASK.finished_at, TASK.id)
    ).all()
    for row in rows:
        outcome = _OUTCOMES[TaskState(row.state)]
        metrics = None if outcome is Outcome.FAILED else row.metrics
        optimizer.tell(Candidate.from_dict(row.candidate), metrics, outcome)
    if rows:
        session.execute(
            sa.update(Task)
            .where(TASK.id.in_([row.id for row in rows]))
            .values(tell_pending=False)
            .execution_options(synchronize_session=False)
        )


def _load_optimizer(session: Session, experiment: Experiment) -> Optimizer:
    optimizer = build_optimizer(experiment.spec)
    if experiment.optimizer_state is not None:
        optimizer.load_state_dict(experiment.optimizer_state)
    if isinstance(optimizer, AcceptsKnown):
        # The task table remembers every architecture asked, so the state need not.
        optimizer.known = _tasks_of(session, experiment.id)
    return optimizer


def _tasks_of(session: Session, experiment_id: int | None) -> KnownHashes:
    """Which of some architecture hashes the experiment already has a task for (any budget-less
    candidate: key `hash@None`, as `Candidate.key` spells it)."""

    def known(hashes: Collection[str]) -> set[str]:
        keys = [f"{arch_hash}@None" for arch_hash in hashes]
        found = session.connection().execute(
            KNOWN_KEYS, {"experiment_id": experiment_id, "keys": keys}
        )
        return {key.rpartition("@")[0] for key in found.scalars()}

    return known


def _ask_and_insert(
    session: Session, experiment: Experiment, optimizer: Optimizer, room: int
) -> tuple[int, bool]:
    """Ask for `room` new candidates; (tasks created, whether the optimizer ran dry)."""
    created = 0
    for _ in range(ASK_ROUNDS if room > 0 else 0):
        candidates = optimizer.ask(room - created)
        if not candidates:
            return created, True
        created += _insert_new(session, experiment, candidates)
        if created >= room:
            break
    return created, created == 0


def _insert_new(session: Session, experiment: Experiment, candidates: list[Candidate]) -> int:
    """Insert the candidates not already tried in this experiment (same architecture and budget)."""
    assert experiment.id is not None
    keys = {c.key: c for c in candidates}
    known = set(
        session.scalars(
            sa.select(TASK.candidate_key).where(
                TASK.experiment_id == experiment.id, TASK.candidate_key.in_(keys)
            )
        )
    )
    fresh = [c for key, c in keys.items() if key not in known]
    if fresh:
        _insert_tasks(session, experiment, fresh)
        experiment.tasks_created += len(fresh)
        announce_tasks(session, len(fresh))
    return len(fresh)


def _insert_tasks(session: Session, experiment: Experiment, candidates: list[Candidate]) -> None:
    """One multi-row INSERT for the tasks and one for their `created` events."""
    assert experiment.id is not None
    rows = [
        {
            "experiment_id": experiment.id,
            "state": TaskState.PENDING,
            "candidate": candidate.to_dict(),
            "candidate_key": candidate.key,
            "budget": candidate.budget,
            "max_attempts": experiment.max_attempts,
            "intermediate": {},
            "attempt": 1,
            "tell_pending": False,
        }
        for candidate in candidates
    ]
    connection = session.connection()
    task_ids = connection.execute(INSERT_TASK, rows).scalars().all()
    events = [
        event_params(task_id, experiment.id, EventKind.CREATED, attempt=1, worker_id=None)
        for task_id in task_ids
    ]
    connection.execute(ADD_EVENT, events)


def add_event(
    session: Session,
    *,
    task_id: int,
    experiment_id: int,
    kind: EventKind,
    attempt: int = 1,
    worker_id: int | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """Append one TaskEvent (the table is never updated)."""
    params = event_params(
        task_id, experiment_id, kind, attempt=attempt, worker_id=worker_id, detail=detail
    )
    session.execute(ADD_EVENT, params)  # the session's execute: it flushes pending ORM changes


def _count_in_flight(db: Session | Connection, experiment_id: int | None) -> int:
    """Pending + running. Given a session, its execute flushes the unit's ORM changes first (a
    task just finished through the ORM must not count as running)."""
    count = db.execute(COUNT_IN_FLIGHT, {"experiment_id": experiment_id})
    return int(count.scalar_one())


def _out_of_time(session: Session, experiment: Experiment) -> bool:
    if experiment.max_seconds is None or experiment.started_at is None:
        return False
    now: datetime = session.execute(sa.select(db_now())).scalar_one()
    return _past(experiment.max_seconds, experiment.started_at, now)


def _past(max_seconds: float | None, started_at: datetime | None, now: datetime) -> bool:
    """The time budget has run out."""
    if max_seconds is None or started_at is None:
        return False
    return (now - started_at).total_seconds() >= max_seconds


def _cancel_pending(session: Session, experiment: Experiment) -> None:
    cancel_tasks(session, experiment, (TaskState.PENDING,), reason="time budget reached")


def cancel_tasks(
    session: Session, experiment: Experiment, states: tuple[TaskState, ...], *, reason: str
) -> int:
    """Cancel the experiment's tasks in `states` (their lease tokens then read `stop`)."""
    assert experiment.id is not None
    rows = session.execute(
        sa.update(Task)
        .where(TASK.experiment_id == experiment.id, TASK.state.in_(states))
        .values(state=TaskState.CANCELLED, finished_at=db_now(), error=reason)
        .returning(TASK.id, TASK.attempt, TASK.worker_id)
    ).all()
    for task_id, attempt, worker_id in rows:
        add_event(
            session,
            task_id=task_id,
            experiment_id=experiment.id,
            kind=EventKind.CANCELLED,
            attempt=attempt,
            worker_id=worker_id,
            detail={"reason": reason},
        )
    return len(rows)


def _finish(session: Session, experiment: Experiment, status: ExperimentStatus) -> None:
    experiment.status = status
    experiment.finished_at = session.execute(sa.select(db_now())).scalar_one()


def _fail_experiment(session: Session, experiment: Experiment, exc: Exception) -> None:
    log.exception("experiment %s: optimizer failed", experiment.id)
    experiment.error = f"optimizer: {type(exc).__name__}: {exc}"[:2000]
    cancel_tasks(session, experiment, IN_FLIGHT, reason="optimizer failed")
    _finish(session, experiment, ExperimentStatus.FAILED)


def finish_if_done_locked(session: Session, experiment: Experiment) -> None:
    """Reaper and lifecycle hook: refill, cancel on timeout, or complete as appropriate."""
    feed_locked(session, experiment)
