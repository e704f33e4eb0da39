"""Task transitions: claim, heartbeat (metrics and pruning included), complete, fail and
requeue of expired leases. Each is one unit of work; each guards its change in SQL (state and
lease token), so a worker presumed dead can never overwrite its successor's work."""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from server import pruning
from server.db import unit
from server.errors import ConflictError, ForbiddenError, NotFoundError, StaleLeaseError
from server.models import EventKind, ExperimentStatus, TaskState
from server.store import intermediate
from server.store import sql as S
from server.store.refill import budget_of, refill
from server.store.refill_rule import Outcomes, plan_refill
from server.store.sql import Row
from server.wakeup import announce_tasks

log = logging.getLogger("morphml.server")
# Experiments whose optimizer is still told outcomes (a paused one resumes with them).
TELLING = (ExperimentStatus.RUNNING, ExperimentStatus.PAUSED)
STOPPED = (TaskState.CANCELLED, TaskState.PRUNED)
# Failures of workers' machines one task may cause before they count as attempts (a candidate
# that fills every disk it runs on must still fail in the end).
MAX_ENVIRONMENT_FAILURES = 5


@dataclass(frozen=True)
class Claim:
    """A claimed task with what the worker needs from its experiment."""

    task: Row  # sql.CLAIM's RETURNING columns
    spec: dict[str, Any]
    lease_seconds: float


@dataclass(frozen=True)
class Miss:
    """No claim; `unfit` when pending tasks exist that this worker cannot run (others might)."""

    unfit: bool


@dataclass(frozen=True)
class Settled:
    """A task as a complete or fail left it, with its intermediate metrics (the API shows both),
    and whether it made a refill due (run already, unless the caller runs it: `refill_inline`)."""

    task: Row
    history: intermediate.History
    refill_due: bool = False
    # Its experiment has artifacts (weights, checkpoints): their clean-up is due.
    has_artifacts: bool = False


@dataclass(frozen=True)
class Beat:
    """A heartbeat's outcome: the new lease expiry, or why to stop (`pruned`: this heartbeat's
    metrics made the pruner stop the task)."""

    lease_expires_at: datetime | None
    stop_reason: str | None
    pruned: bool = False
    refill_due: bool = False
    experiment_id: int | None = None


def claim(
    engine: Engine,
    *,
    worker_id: int,
    free_gpus: int | None,
    free_gpu_memory_mb: int | None,
    labels: dict[str, str] | None,
    caller: int | None = None,
    wait_seconds: float | None = None,
    max_tasks: int = 1,
) -> list[Claim] | Miss:
    """Lease up to `max_tasks` of the best-fitting pending tasks to the worker, in one unit, each
    picked as a claim of one would pick it; on a miss, say whether pending work was left for
    other workers. A worker that declared its slots gets no more than its free ones (409 when it
    has none). `caller`: the worker the credential names (None: admin or auth off), which must be
    the one claiming."""
    check_claimant(caller, worker_id)
    with unit(engine) as connection:
        touch = {"worker_id": worker_id, "b_poll": wait_seconds}
        worker = connection.execute(S.TOUCH_POLLING_WORKER, touch).first()
        if worker is None:
            raise NotFoundError(f"worker {worker_id} not registered")
        room = _room(connection, worker_id, worker.resources or {}, max_tasks)
        gpus, memory = _free_resources(worker.resources or {}, free_gpus, free_gpu_memory_mb)
        wanted = (worker.labels or {}) if labels is None else labels
        queues, unfit = _queues(connection, gpus=gpus, memory=memory, labels=wanted)
        claims = _claim_up_to(connection, queues, worker_id, room)
        return claims or Miss(unfit=unfit)


def _room(connection: Connection, worker_id: int, resources: dict[str, Any], wanted: int) -> int:
    """How many leases this claim may add: `wanted`, capped by the worker's declared slots less
    the leases it holds (409 when it holds them all): a stolen token cannot hoard an
    experiment's tasks through one registration."""
    slots = resources.get("slots") or 0
    if not slots:
        return wanted
    held = connection.execute(S.RUNNING_ON_WORKER, {"worker_id": worker_id}).scalar_one()
    if held >= slots:
        raise ConflictError(
            f"worker {worker_id} already holds {held} running tasks, its declared slots"
        )
    return min(wanted, slots - held)


@dataclass
class _Queue:
    """A running experiment's pending work as a claim sees it; `running` and `pending` follow
    the claim's own picks."""

    experiment: Row
    running: int
    pending: int

    def rank(self) -> tuple[int, int, int]:
        """Priority, then fair share (fewest running tasks), then the older experiment."""
        return (-self.experiment.priority, self.running, self.experiment.id)


def _claim_up_to(
    connection: Connection, queues: list[_Queue], worker_id: int, room: int
) -> list[Claim]:
    """Up to `room` tasks, each from the best-ranked queue at the time of its pick (fair share
    is recounted after every pick, so a batch spreads over experiments as single claims would),
    and their "claimed" events as one multi-row INSERT."""
    claims: list[Claim] = []
    while len(claims) < room and queues:
        best = min(queues, key=_Queue.rank)
        task = _claim_in(connection, best.experiment.id, worker_id)
        best.running, best.pending = best.running + 1, best.pending - 1
        if task is None or best.pending <= 0:
            queues.remove(best)  # drained (or its tasks were taken meanwhile, or avoid us)
        if task is not None:
            spec, lease = best.experiment.spec, best.experiment.lease_seconds
            claims.append(Claim(task=task, spec=spec, lease_seconds=lease))
    if claims:
        events = [_event_params(claimed.task, EventKind.CLAIMED) for claimed in claims]
        connection.execute(S.ADD_EVENT, events)
    return claims


def _claim_in(connection: Connection, experiment_id: int, worker_id: int) -> Row | None:
    params = {
        "b_experiment_id": experiment_id,
        "b_worker_id": worker_id,
        "b_lease_token": secrets.token_urlsafe(24),
    }
    return connection.execute(S.CLAIM, params).first()


def _queues(
    connection: Connection, *, gpus: int, memory: int, labels: dict[str, str]
) -> tuple[list[_Queue], bool]:
    """Running experiments with pending tasks this worker can run; and whether some running
    experiment has pending tasks it cannot run.

    Ranked in Python over a handful of rows (`_Queue.rank`): the alternative, ranking every
    pending task in SQL, costs a sort of the whole queue per claim.
    """
    load = {(e, state): int(n) for e, state, n in connection.execute(S.IN_FLIGHT_COUNTS)}
    running = connection.execute(S.RUNNING_EXPERIMENTS)
    with_pending = [e for e in running if load.get((e.id, TaskState.PENDING), 0) > 0]
    fitting = [e for e in with_pending if _fits(e, gpus, memory, labels)]
    queues = [
        _Queue(e, load.get((e.id, TaskState.RUNNING), 0), load[(e.id, TaskState.PENDING)])
        for e in fitting
    ]
    return queues, len(fitting) < len(with_pending)


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
    caller: int | None = None,
    refill_inline: bool = True,
) -> Beat:
    """Extend the lease and record progress; with metrics, append them and ask the pruner, and
    prune the task in the same unit when it says stop. A stopped task answers stop."""
    with unit(engine) as connection:
        params = {"task_id": task_id, "b_lease_token": lease_token, "b_progress": progress}
        beat = S.BEAT_REPORTING if metrics else S.BEAT
        row = connection.execute(beat, {**params, "b_step": step}).first()
        if row is None:
            return _beat_refused(connection, task_id, lease_token)
        _check_caller(caller, row.worker_id, "heartbeat the lease of")  # rolls the beat back
        connection.execute(S.TOUCH_WORKER, {"worker_id": row.worker_id})
        if not metrics:
            return Beat(lease_expires_at=row.lease_expires_at, stop_reason=None)
        intermediate.append(
            connection, task_id=task_id, experiment_id=row.experiment_id, step=step, metrics=metrics
        )
        if not pruning.enabled(row.pruner):  # the plain beat's cost, and one INSERT
            return Beat(lease_expires_at=row.lease_expires_at, stop_reason=None)
        spec = connection.execute(S.EXPERIMENT_SPEC, {"experiment_id": row.experiment_id})
        reason = pruning.stop_reason(
            connection, task_id=task_id, experiment_id=row.experiment_id, spec=spec.scalar_one()
        )
        if reason is None:
            return Beat(lease_expires_at=row.lease_expires_at, stop_reason=None)
        due = _prune(connection, task_id, lease_token, reason, caller)
    if refill_inline:
        _refill_after(engine, row.experiment_id, due)
    stop = f"pruned: {reason}"
    return Beat(None, stop, pruned=True, refill_due=due, experiment_id=row.experiment_id)


def _beat_refused(connection: Connection, task_id: int, lease_token: str) -> Beat:
    """Why the guarded beat changed nothing: unknown (404), stale token (409), stopped (stop),
    or no longer running (409)."""
    standing = connection.execute(S.TASK_STANDING, {"task_id": task_id}).first()
    if standing is None:
        raise NotFoundError(f"task {task_id} not found")
    check_token(task_id, standing.lease_token, lease_token)
    if standing.state in STOPPED:
        return Beat(lease_expires_at=None, stop_reason=str(standing.state))
    raise ConflictError(f"task {task_id} is {standing.state}")


def _prune(
    connection: Connection, task_id: int, lease_token: str, reason: str, caller: int | None
) -> bool:
    """The pruner's stop, recorded like a complete with the last reported metrics; whether a
    refill became due."""
    locked = lock_task(connection, task_id, lease_token, caller)
    last = intermediate.last_metrics(intermediate.history(connection, task_id))
    _finish(connection, locked, TaskState.PRUNED, metrics=last, error=reason)
    _event(connection, locked, EventKind.PRUNED, {"reason": reason})
    return _refill_due(connection, locked)


def lock_task(
    connection: Connection,
    task_id: int,
    lease_token: str,
    caller: int | None = None,
    *,
    late: bool = False,
) -> Row:
    """The task row locked (the lock order's first kind of unit), its token checked, and its
    lease holder checked against the caller's credential.

    `late` (a complete): also the lease a requeue took back, while the task still waits
    unclaimed (the server was down longer than the lease: the work is done, it need not be
    trained again). A newer lease fences it as usual."""
    locked = connection.execute(S.LOCK_TASK, {"task_id": task_id}).first()
    if locked is None:
        raise NotFoundError(f"task {task_id} not found")
    released = late and locked.state == TaskState.PENDING and locked.released_token is not None
    check_token(task_id, locked.released_token if released else locked.lease_token, lease_token)
    holder = locked.avoid_worker_id if released else locked.worker_id
    _check_caller(caller, holder, "report the lease of")
    return locked


def check_claimant(caller: int | None, worker_id: int) -> None:
    """403 unless the credential names the claiming worker (None: admin or auth off)."""
    _check_caller(caller, worker_id, "claim as")


def _check_caller(caller: int | None, worker_id: int | None, action: str) -> None:
    if caller is not None and caller != worker_id:
        raise ForbiddenError(f"worker {caller} may not {action} worker {worker_id}")


def check_token(task_id: int, current: str | None, presented: str) -> None:
    # As bytes: compare_digest refuses str with non-ASCII characters (a TypeError, a 500).
    if current is None or not secrets.compare_digest(current.encode(), presented.encode()):
        raise StaleLeaseError(
            f"task {task_id}: lease token is not current (the task was reassigned or finished)"
        )


def complete(
    engine: Engine,
    *,
    task_id: int,
    lease_token: str,
    metrics: dict[str, float],
    caller: int | None = None,
    refill_inline: bool = True,
) -> Settled:
    """Record final metrics; the same token again returns the task unchanged (idempotent).

    The outcome is queued for the optimizer (`tell_pending`); when it makes a refill due, the
    refill runs after the commit in a unit of its own, waiting for a refill already under way,
    so every outcome is told before the next ask that follows it.
    """
    with unit(engine) as connection:
        locked = lock_task(connection, task_id, lease_token, caller, late=True)
        history = intermediate.history(connection, task_id) if locked.has_reports else {}
        if locked.state == TaskState.COMPLETED:
            task = connection.execute(S.TASK_BY_ID, {"task_id": task_id}).one()
            return Settled(task, history)
        late = locked.state == TaskState.PENDING  # `lock_task` checked whose lease it was
        if locked.state != TaskState.RUNNING and not late:
            raise ConflictError(
                f"task {task_id} is {locked.state}; its result is not needed any more"
            )
        task = _finish(connection, locked, TaskState.COMPLETED, metrics=metrics)
        _resumed_event(connection, locked, metrics)
        _event(connection, locked, EventKind.COMPLETED, {"late": True} if late else None)
        due = _refill_due(connection, locked)
        artifacts = _has_artifacts(connection, locked.experiment_id)
    if refill_inline:
        _refill_after(engine, locked.experiment_id, due)
    return Settled(task, history, due, artifacts)


def fail(
    engine: Engine,
    *,
    task_id: int,
    lease_token: str,
    error: str,
    retryable: bool,
    environment: bool = False,
    caller: int | None = None,
    refill_inline: bool = True,
) -> Settled:
    """Retry (pending, attempt + 1) while attempts remain and the error is retryable, else fail.
    `environment`: the worker's machine failed, not the candidate: retried without using an
    attempt, up to MAX_ENVIRONMENT_FAILURES times."""
    with unit(engine) as connection:
        locked = lock_task(connection, task_id, lease_token, caller)
        if locked.state != TaskState.RUNNING:
            raise ConflictError(f"task {task_id} is {locked.state}")
        if environment and locked.environment_failures < MAX_ENVIRONMENT_FAILURES:
            task = _release(connection, locked, S.RELEASE_ENVIRONMENT, error, EventKind.RETRIED)
            history = intermediate.history(connection, task_id) if locked.has_reports else {}
            return Settled(task, history)
        task, due = _release_or_fail(
            connection, locked, error=error, retry=retryable, kind=EventKind.RETRIED
        )
        history = intermediate.history(connection, task_id) if locked.has_reports else {}
        artifacts = _has_artifacts(connection, locked.experiment_id)
    if refill_inline:
        _refill_after(engine, locked.experiment_id, due)
    return Settled(task, history, due, artifacts)


def _has_artifacts(connection: Connection, experiment_id: int) -> bool:
    query, params = S.EXPERIMENT_HAS_ARTIFACTS, {"experiment_id": experiment_id}
    return connection.execute(query, params).first() is not None


def requeue_expired(engine: Engine, *, limit: int = 100) -> int:
    """Return expired leases to pending (attempt + 1), or fail them when attempts are exhausted."""
    with unit(engine) as connection:
        expired = connection.execute(S.EXPIRED, {"limit": limit}).scalars().all()
    return sum(_requeue_one(engine, task_id) for task_id in expired)


def _requeue_one(engine: Engine, task_id: int) -> int:
    with unit(engine) as connection:
        locked = connection.execute(S.LOCK_TASK, {"task_id": task_id}).first()
        still = connection.execute(S.STILL_EXPIRED, {"task_id": task_id}).first()
        if locked is None or still is None:
            return 0  # a heartbeat or another replica got there first
        _, due = _release_or_fail(
            connection,
            locked,
            error="lease expired (no heartbeat)",
            retry=True,
            kind=EventKind.LEASE_EXPIRED,
        )
    _refill_after(engine, locked.experiment_id, due)
    return 1


def _release_or_fail(
    connection: Connection, locked: Row, *, error: str, retry: bool, kind: EventKind
) -> tuple[Row, bool]:
    """Back to pending with attempt + 1 if allowed, else failed and queued for the optimizer;
    the task as it now stands and whether a refill became due."""
    if retry and locked.attempt < locked.max_attempts:
        return _release(connection, locked, S.RELEASE, error, kind), False
    task = _finish(connection, locked, TaskState.FAILED, error=error)
    _event(connection, locked, EventKind.FAILED, {"error": error[:500], "cause": kind.value})
    return task, _refill_due(connection, locked, failed=True)


def _release(
    connection: Connection, locked: Row, statement: Any, error: str, kind: EventKind
) -> Row:
    """Back to pending (`sql.RELEASE` or `RELEASE_ENVIRONMENT`), claimers woken."""
    task = connection.execute(statement, {"task_id": locked.id, "b_error": error}).one()
    environment = statement is S.RELEASE_ENVIRONMENT
    _event(connection, locked, kind, {"error": error[:500], "environment": environment})
    announce_tasks(connection)
    return task


def _finish(
    connection: Connection,
    locked: Row,
    state: TaskState,
    *,
    metrics: dict[str, float] | None = None,
    error: str | None = None,
) -> Row:
    """The task in a final state, its outcome queued for the optimizer while it is told any."""
    params = {
        "task_id": locked.id,
        "b_state": state,
        "b_now": locked.now,
        "b_metrics": metrics,
        "b_score": None if metrics is None else score(locked.spec, metrics),
        "b_error": error,
        "b_tell_pending": locked.status in TELLING,
    }
    return connection.execute(S.FINISH, params).one()


def score(spec: dict[str, Any], metrics: dict[str, float]) -> float | None:
    """The first objective, signed so that bigger is better (best = ORDER BY score DESC)."""
    objective = spec["objectives"][0]
    value = metrics.get(objective["metric"])
    if value is None:
        return None
    return value if objective["direction"] == "maximize" else -value


def _event(
    connection: Connection, task: Row, kind: EventKind, detail: dict[str, Any] | None = None
) -> None:
    """Record `kind` for the task as it stood when locked or claimed (its attempt and worker)."""
    connection.execute(S.ADD_EVENT, _event_params(task, kind, detail))


def _resumed_event(connection: Connection, task: Row, metrics: dict[str, float]) -> None:
    """Where a resumed attempt went on from: the evaluator reports it with the result (the
    `train` evaluator's `resumed_from_epoch`), so the timeline shows what the retry cost."""
    epoch = metrics.get("resumed_from_epoch")
    if epoch is not None and epoch >= 1:
        _event(connection, task, EventKind.RESUMED, {"from_epoch": int(epoch)})


def _event_params(
    task: Row, kind: EventKind, detail: dict[str, Any] | None = None
) -> dict[str, Any]:
    return S.event_params(
        task.id,
        task.experiment_id,
        kind,
        attempt=task.attempt,
        worker_id=task.worker_id,
        detail=detail,
    )


def _refill_due(connection: Connection, locked: Row, *, failed: bool = False) -> bool:
    """Whether the refill has work now: the refill rule on this unit's counts (failures are
    counted only after a failure: a success cannot make the experiment give up)."""
    if locked.status != ExperimentStatus.RUNNING:
        return False
    budget = budget_of(locked)
    params = {"experiment_id": locked.experiment_id}
    flight = connection.execute(S.IN_FLIGHT_OF, params).one()
    outcomes = Outcomes(pending=flight.pending, running=flight.running, succeeded=1)
    if failed:
        cap = budget.failures_that_matter()
        failures = connection.execute(S.FAILURES_OF, {**params, "failed_cap": cap}).one()
        outcomes = replace(outcomes, failed=failures.failed, succeeded=int(failures.succeeded))
    return plan_refill(budget, outcomes, now=locked.now).due


def refill_after(engine: Engine, experiment_id: int) -> None:
    """The refill an outcome made due, when the caller runs it (`refill_inline=False`)."""
    _refill_after(engine, experiment_id, True)


def _refill_after(engine: Engine, experiment_id: int, due: bool) -> None:
    """The refill a committed outcome made due. Its failure must not turn the committed outcome
    into an error (the worker would retry a complete that worked): the reaper's pass retries."""
    if not due:
        return
    try:
        refill(engine, experiment_id)
    except (SQLAlchemyError, ConflictError) as exc:
        log.warning(
            "experiment %s: refill after an outcome failed (%s); the reaper retries",
            experiment_id,
            exc,
        )
