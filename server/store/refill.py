"""Refill: the only place the optimizer runs. Under the experiment's lock, tell it the outcomes
waiting for it, ask for candidates up to the plan's room, insert them as tasks and persist its
state in the same commit; complete the experiment when it is done."""

from __future__ import annotations

import functools
import logging
import threading
import weakref
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from morphml.optimizers import AcceptsKnown, Candidate, KnownHashes, Optimizer, Outcome
from morphml.optimizers.base import candidate_key
from server.db import db_now, read, unit
from server.models import EventKind, ExperimentStatus, TaskState
from server.spec import build_optimizer
from server.store import sql as S
from server.store.refill_rule import Budget, Outcomes, RefillPlan, plan_refill
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
        max_failed=experiment.spec.get("budget", {}).get("max_failed"),
    )


# How long a refill waits for this process's refill of the same experiment under way (whose
# outcomes it would otherwise ask without) before leaving its own to the reaper: a slow ask
# (a space of huge architectures) then holds a thread that long at most.
REFILL_WAIT_SECONDS = 10.0
# A refill that lost the race to another (a version changed under it) reads and asks again;
# past this many, the reaper's next pass tops the experiment up.
REFILL_TRIES = 5


@dataclass(frozen=True)
class Snapshot:
    """What a refill read, in one read-only unit: the experiment (its version is the fence),
    the plan, the outcomes to tell."""

    experiment: Row
    plan: RefillPlan
    outcomes: list[Row]


@dataclass(frozen=True)
class Proposal:
    """What the optimizer made of a snapshot, outside any transaction: candidates and its new
    state, or the failure that fails the experiment."""

    candidates: list[Candidate] = field(default_factory=list)
    exhausted: bool = False
    state: dict[str, Any] | None = None
    failure: str | None = None


def refill(engine: Engine, experiment_id: int) -> None:
    """Tell the experiment's optimizer its queued outcomes and top the experiment up.

    Optimistic: read a snapshot and consult the optimizer in a read-only unit (building a space
    and asking can take seconds, and must never hold SQLite's write lock or an experiment row),
    then write under the experiment's lock only if its version is unchanged;
    otherwise read and ask again. Every write to an experiment bumps its version, so an outcome
    is told exactly once and proposals follow the outcomes they were asked after.
    """
    lock = _one_at_a_time(engine, experiment_id)
    if not lock.acquire(timeout=REFILL_WAIT_SECONDS):
        log.info("experiment %s: a refill is still asking; the reaper retries", experiment_id)
        return
    try:
        _refill_fenced(engine, experiment_id)
    finally:
        lock.release()


def _refill_fenced(engine: Engine, experiment_id: int) -> None:
    for _ in range(REFILL_TRIES):
        with read(engine) as connection:
            snapshot = _read(connection, experiment_id)
            if snapshot is None:
                return
            proposal = _consult(connection, snapshot)
        if _write(engine, snapshot, proposal):
            return
    log.info("experiment %s: refill lost %d races; the reaper retries", experiment_id, REFILL_TRIES)


_GUARD = threading.Lock()
_REFILLING: weakref.WeakKeyDictionary[Engine, dict[int, threading.Lock]] = (
    weakref.WeakKeyDictionary()
)


def _one_at_a_time(engine: Engine, experiment_id: int) -> threading.Lock:
    """This process's lock for refilling one experiment. Completes that make a refill due at
    the same moment would each build the optimizer, tell and ask, and all but one lose the
    version race: queued here, the next one reads the first one's result and usually finds
    nothing due. Other replicas are still fenced by the version."""
    with _GUARD:
        locks = _REFILLING.setdefault(engine, {})
        return locks.setdefault(experiment_id, threading.Lock())


def _read(connection: Connection, experiment_id: int) -> Snapshot | None:
    """The snapshot, or None when the experiment is not running or has nothing due."""
    experiment = connection.execute(S.EXPERIMENT_ROW, {"experiment_id": experiment_id}).first()
    if experiment is None or experiment.status != ExperimentStatus.RUNNING:
        return None
    budget = budget_of(experiment)
    # Counts and outcomes in one statement, so one snapshot on every database.
    params = {"experiment_id": experiment_id, "failed_cap": budget.failures_that_matter()}
    view = connection.execute(S.REFILL_VIEW, params).all()
    counts = view[0]
    outcomes = Outcomes(counts.pending, counts.running, counts.failed, int(counts.succeeded))
    plan = plan_refill(budget, outcomes, now=experiment.now)
    if not plan.due:
        return None
    return Snapshot(experiment, plan, [row for row in view if row.id is not None])


def _consult(connection: Connection, snapshot: Snapshot) -> Proposal:
    """Build the optimizer, tell it, ask it: library code, guarded, in the snapshot's read-only
    unit (its lookups read the same snapshot; it holds no lock)."""
    try:
        optimizer = _guarded(lambda: _load_optimizer(connection, snapshot.experiment))
        _guarded(lambda: _tell(optimizer, snapshot.outcomes))
        candidates, exhausted = _ask(connection, snapshot, optimizer)
        state = _guarded(optimizer.state_dict)
    except OptimizerFailure as exc:
        return Proposal(failure=str(exc))
    return Proposal(candidates=candidates, exhausted=exhausted, state=state)


def _write(engine: Engine, snapshot: Snapshot, proposal: Proposal) -> bool:
    """Under the experiment's lock: the proposal, if the snapshot is still current; whether it
    was (False: another refill or a lifecycle change came first)."""
    experiment, plan = snapshot.experiment, snapshot.plan
    with unit(engine) as connection:
        now = connection.execute(S.LOCK_EXPERIMENT, {"experiment_id": experiment.id}).first()
        if now is None or now.version != experiment.version:
            return False
        if proposal.failure is not None:
            fail_experiment(connection, experiment.id, proposal.failure, "optimizer failed")
            return True
        if plan.give_up is not None:
            _give_up(connection, experiment.id, plan.give_up)
            return True
        if plan.cancel_pending:
            cancel_tasks(connection, experiment.id, (TaskState.PENDING,), "time budget reached")
        if snapshot.outcomes:
            connection.execute(S.MARK_TOLD, {"task_ids": [row.id for row in snapshot.outcomes]})
        created = _insert_new(connection, experiment, proposal.candidates)
        values: dict[str, Any] = {
            "optimizer_state": proposal.state,
            "tasks_created": experiment.tasks_created + created,
        }
        # In flight can only have fallen since the snapshot (a rise takes a refill, which would
        # have changed the version), so "nothing in flight" read then is still true.
        if plan.in_flight + created == 0 and (plan.may_complete or proposal.exhausted):
            if plan.no_success:  # it ran to its end and nothing worked: not a success
                _give_up(connection, experiment.id, "every task failed")
                return True
            values.update(status=ExperimentStatus.COMPLETED, finished_at=db_now())
        connection.execute(S.SET_EXPERIMENT.values(**values), {"experiment_id": experiment.id})
    return True


def _give_up(connection: Connection, experiment_id: int, why: str) -> None:
    """Failed, with the reason and the first task's error (what a user needs to fix first)."""
    first = connection.execute(S.FIRST_ERROR, {"experiment_id": experiment_id}).scalar()
    error = f"{why}; first error: {first}" if first else why
    fail_experiment(connection, experiment_id, error[:2000], "experiment failed")


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
        params = {"experiment_id": experiment_id, "keys": list(keys)}
        found = connection.execute(S.KNOWN_KEYS, params).scalars().all()
        return {keys[key] for key in found}

    return known


def _ask(
    connection: Connection, snapshot: Snapshot, optimizer: Optimizer
) -> tuple[list[Candidate], bool]:
    """Up to the plan's room of candidates the experiment has no task for; whether the
    optimizer ran dry. An optimizer may propose what was already tried: ask a few rounds."""
    room, experiment = snapshot.plan.room, snapshot.experiment
    fresh: dict[str, Candidate] = {}
    for _ in range(ASK_ROUNDS if room > 0 else 0):
        asked = _guarded(functools.partial(optimizer.ask, room - len(fresh)))
        if not asked:
            return list(fresh.values()), True
        params = {"experiment_id": experiment.id, "keys": [c.key for c in asked]}
        tried = set(connection.execute(S.KNOWN_KEYS, params).scalars())
        fresh.update((c.key, c) for c in asked if c.key not in tried and c.key not in fresh)
        if len(fresh) >= room:
            break
    return list(fresh.values()), not fresh


def _insert_new(connection: Connection, experiment: Row, fresh: list[Candidate]) -> int:
    """Insert the candidates as one multi-row INSERT of tasks and one of their `created` events.

    `_ask` kept only candidates the snapshot had no task for, and only refills insert tasks,
    each bumping the version that `_write` found unchanged: they are still new (the unique index
    on the candidate key stays the backstop)."""
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


def fail_experiment(connection: Connection, experiment_id: int, error: str, reason: str) -> None:
    """Failed with `error`; its pending and running tasks cancelled for `reason`."""
    cancel_tasks(connection, experiment_id, S.IN_FLIGHT, reason)
    values = {"status": ExperimentStatus.FAILED, "error": error, "finished_at": db_now()}
    connection.execute(S.SET_EXPERIMENT.values(**values), {"experiment_id": experiment_id})
