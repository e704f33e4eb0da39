"""The store's SQL, built once: every write transition runs these on a unit's Core connection.

Built per call and run through the ORM session, each statement cost 0.4-0.6 ms of Python before
reaching the database; prebuilt with bind parameters, SQLAlchemy only looks its compiled form up
in the cache (bench/README.md, "Second server pass"). Update and insert statements name their
bind parameters b_<column>: SQLAlchemy reserves the column names for their VALUES.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from server.db import db_now
from server.models import (
    ARTIFACT,
    EVENT,
    EXPERIMENT,
    TASK,
    TASK_METRIC,
    WORKER,
    ExperimentStatus,
    TaskState,
    WorkerStatus,
)

_experiment = EXPERIMENT.id.table
_task = TASK.id.table
_worker = WORKER.id.table
_event = EVENT.id.table
_task_metric = TASK_METRIC.id.table
_artifact = ARTIFACT.id.table

IN_FLIGHT = (TaskState.PENDING, TaskState.RUNNING)
# A result row of any of these statements (SQLAlchemy types rows by their column count).
Row = sa.Row[*tuple[Any, ...]]

# --- workers -------------------------------------------------------------------------------

REGISTER_WORKER = (
    sa.insert(_worker)
    .values(status=WorkerStatus.ONLINE, created_at=db_now(), last_seen_at=db_now())
    .returning(*WORKER)
)

TOUCH_WORKER = (
    sa.update(_worker)
    .where(WORKER.id == sa.bindparam("worker_id"))
    .values(last_seen_at=db_now(), status=WorkerStatus.ONLINE)
    .returning(WORKER.resources, WORKER.labels)
)

# A claim attempt: the worker is alive, and polls every `b_poll` seconds.
TOUCH_POLLING_WORKER = TOUCH_WORKER.values(poll_seconds=sa.bindparam("b_poll"))

MARK_SILENT_OFFLINE = (
    sa.update(_worker)
    .where(
        WORKER.status == WorkerStatus.ONLINE,
        WORKER.last_seen_at < db_now(sa.bindparam("b_silent", type_=sa.Float)),
    )
    .values(status=WorkerStatus.OFFLINE)
)

# --- claim ---------------------------------------------------------------------------------

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
    # Not straight back to the worker that just gave the task up (for AVOID_SECONDS).
    not_avoided = sa.or_(
        TASK.avoid_worker_id.is_(None),
        TASK.avoid_worker_id != sa.bindparam("b_worker_id"),
        TASK.avoid_until < db_now(),
    )
    pick = (
        sa.select(TASK.id)
        .where(TASK.state == TaskState.PENDING, TASK.experiment_id == experiment_id, not_avoided)
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

# --- heartbeat -----------------------------------------------------------------------------

# The lease holder of a running task extends its lease: one guarded statement. No row means a
# stale token, a stopped or an unknown task; `TASK_STANDING` then says which.
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
    .returning(TASK.lease_expires_at, TASK.worker_id, TASK.experiment_id)
)

# A heartbeat that carries metrics: the same beat, and whether the experiment prunes (its spec's
# `pruner`, one JSON field read in the same statement), so a beat without a pruner never reads
# and parses the whole spec.
_PRUNER_OF_TASK = (
    sa.select(EXPERIMENT.spec["pruner"])
    .where(EXPERIMENT.id == TASK.experiment_id)
    .scalar_subquery()
)
BEAT_REPORTING = BEAT.returning(_PRUNER_OF_TASK.label("pruner"))

TASK_STANDING = sa.select(TASK.state, TASK.lease_token).where(TASK.id == sa.bindparam("task_id"))


def _append_metrics() -> sa.Insert:
    """INSERT ... SELECT: one report appended unless the task already holds `b_max` of them
    (a long or hostile run cannot grow the table without bound). A missing step is the next
    position."""
    task_id = sa.bindparam("b_task_id", type_=sa.Integer)
    count = sa.select(sa.func.count()).where(TASK_METRIC.task_id == task_id).scalar_subquery()
    step = sa.func.coalesce(sa.bindparam("b_step", type_=sa.Integer), count)
    row = sa.select(
        task_id,
        sa.bindparam("b_experiment_id", type_=sa.Integer),
        step,
        sa.bindparam("b_metrics", type_=sa.JSON),
        db_now(),
    ).where(count < sa.bindparam("b_max", type_=sa.Integer))
    columns = ["task_id", "experiment_id", "step", "metrics", "created_at"]
    return sa.insert(_task_metric).from_select(columns, row)


APPEND_METRICS = _append_metrics()

# A task's reports, or one experiment's reports up to a step (the pruner's peers), oldest first;
# a step reported twice keeps its last report.
TASK_HISTORY = (
    sa.select(TASK_METRIC.step, TASK_METRIC.metrics)
    .where(TASK_METRIC.task_id == sa.bindparam("task_id"))
    .order_by(TASK_METRIC.step, TASK_METRIC.id)
)
PEER_HISTORIES = (
    sa.select(TASK_METRIC.task_id, TASK_METRIC.step, TASK_METRIC.metrics)
    .where(
        TASK_METRIC.experiment_id == sa.bindparam("experiment_id"),
        TASK_METRIC.step <= sa.bindparam("up_to_step"),
        TASK_METRIC.task_id != sa.bindparam("task_id"),
    )
    .order_by(TASK_METRIC.task_id, TASK_METRIC.step, TASK_METRIC.id)
)
HISTORIES_OF = (
    sa.select(TASK_METRIC.task_id, TASK_METRIC.step, TASK_METRIC.metrics)
    .where(TASK_METRIC.task_id.in_(sa.bindparam("task_ids", expanding=True)))
    .order_by(TASK_METRIC.task_id, TASK_METRIC.step, TASK_METRIC.id)
)

EXPERIMENT_SPEC = sa.select(EXPERIMENT.spec).where(EXPERIMENT.id == sa.bindparam("experiment_id"))

# --- finishing a task: complete, fail, prune, requeue ---------------------------------------

# The lock of every unit that finishes or releases a task: the task row only (store/__init__.py,
# lock order), with what the outcome and the refill decision need of its experiment, and the
# clock. FOR NO KEY UPDATE: claims insert events whose foreign keys take KEY SHARE on the row.
LOCK_TASK = (
    sa.select(
        EXPERIMENT.status,
        EXPERIMENT.spec,
        EXPERIMENT.parallelism,
        EXPERIMENT.max_evaluations,
        EXPERIMENT.max_seconds,
        EXPERIMENT.started_at,
        EXPERIMENT.tasks_created,
        TASK.id,
        TASK.experiment_id,
        TASK.state,
        TASK.lease_token,
        TASK.released_token,
        TASK.attempt,
        TASK.max_attempts,
        TASK.environment_failures,
        TASK.worker_id,
        TASK.avoid_worker_id,
        # Whether the answer needs the task's reports read (most tasks send none).
        sa.exists().where(TASK_METRIC.task_id == TASK.id).label("has_reports"),
        db_now().label("now"),
    )
    .select_from(_experiment)
    .join(_task, TASK.experiment_id == EXPERIMENT.id)
    .where(TASK.id == sa.bindparam("task_id"))
    .with_for_update(of=_task, key_share=True)
)

# Expired leases, oldest first; each is then locked again and re-checked by `LOCK_TASK` and
# `STILL_EXPIRED` (a heartbeat or another replica may have got there first).
EXPIRED = (
    sa.select(TASK.id)
    .where(TASK.state == TaskState.RUNNING, TASK.lease_expires_at < db_now())
    .order_by(TASK.lease_expires_at)
    .limit(sa.bindparam("limit"))
)
STILL_EXPIRED = sa.select(TASK.id).where(
    TASK.id == sa.bindparam("task_id"),
    TASK.state == TaskState.RUNNING,
    TASK.lease_expires_at < db_now(),
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
        error=sa.bindparam("b_error"),
        tell_pending=sa.bindparam("b_tell_pending"),
    )
    .returning(*TASK)
)

# A released task is not handed back to the worker that had it for this long (another worker
# may take it at once; a fleet of one gets it back after the pause).
AVOID_SECONDS = 30.0


def _release(**counting: Any) -> sa.Update:
    """Back to pending: the lease and the worker let go (the old token kept as
    `released_token`, the old worker as `avoid_worker_id`: SET reads the row as it was)."""
    return (
        sa.update(_task)
        .where(TASK.id == sa.bindparam("task_id"))
        .values(
            state=TaskState.PENDING,
            error=sa.bindparam("b_error"),
            released_token=TASK.lease_token,
            avoid_worker_id=TASK.worker_id,
            avoid_until=db_now(AVOID_SECONDS),
            lease_token=None,
            lease_expires_at=None,
            worker_id=None,
            **counting,
        )
        .returning(*TASK)
    )


# For another attempt; or, after a failure of the worker's machine, without using one.
RELEASE = _release(attempt=TASK.attempt + 1)
RELEASE_ENVIRONMENT = _release(environment_failures=TASK.environment_failures + 1)

RUNNING_ON_WORKER = sa.select(sa.func.count()).where(
    TASK.worker_id == sa.bindparam("worker_id"), TASK.state == TaskState.RUNNING
)

TASK_BY_ID = sa.select(*TASK).where(TASK.id == sa.bindparam("task_id"))

# --- experiments ---------------------------------------------------------------------------

INSERT_EXPERIMENT = sa.insert(_experiment).returning(EXPERIMENT.id)

# What a refill reads of an experiment, and (locked) what every unit that changes an experiment
# takes before any of its task rows. Never `optimizer_state` (megabytes for some optimizers):
# `OPTIMIZER_STATE` reads it only when the refill consults the optimizer.
EXPERIMENT_ROW = sa.select(
    EXPERIMENT.id,
    EXPERIMENT.status,
    EXPERIMENT.version,
    EXPERIMENT.spec,
    EXPERIMENT.parallelism,
    EXPERIMENT.max_attempts,
    EXPERIMENT.max_evaluations,
    EXPERIMENT.max_seconds,
    EXPERIMENT.started_at,
    EXPERIMENT.tasks_created,
    db_now().label("now"),
).where(EXPERIMENT.id == sa.bindparam("experiment_id"))
LOCK_EXPERIMENT = EXPERIMENT_ROW.with_for_update(key_share=True)

OPTIMIZER_STATE = sa.select(EXPERIMENT.optimizer_state).where(
    EXPERIMENT.id == sa.bindparam("experiment_id")
)

# Every write to an experiment bumps its version (the refill's fence).
SET_EXPERIMENT = (
    sa.update(_experiment)
    .where(EXPERIMENT.id == sa.bindparam("experiment_id"))
    .values(version=EXPERIMENT.version + 1)
)

RUNNING_EXPERIMENT_IDS = sa.select(EXPERIMENT.id).where(
    EXPERIMENT.status == ExperimentStatus.RUNNING
)


def _failed_up_to(experiment_id: sa.BindParameter[int]) -> sa.ScalarSelect[int]:
    """The experiment's failed tasks, counted up to `failed_cap` (an index range of at most
    that many rows, however many failed: the give-up rule needs no more)."""
    failed = (
        sa.select(TASK.id)
        .where(TASK.state == TaskState.FAILED, TASK.experiment_id == experiment_id)
        .limit(sa.bindparam("failed_cap", type_=sa.Integer))
        .subquery()
    )
    return sa.select(sa.func.count()).select_from(failed).scalar_subquery()


def _any_success(experiment_id: sa.BindParameter[int]) -> sa.Exists:
    return sa.exists().where(
        TASK.state.in_((TaskState.COMPLETED, TaskState.PRUNED)),
        TASK.experiment_id == experiment_id,
    )


def _refill_view() -> sa.Select[Any]:
    """In one statement, so one snapshot: the experiment's pending and running counts, its
    failures (up to `failed_cap`), whether any task succeeded, and the outcomes waiting to be
    told (one row each; one row of NULLs when there are none). Read in two statements, a
    complete committing between them made the refill count a finished task as running or tell
    an outcome it had counted as in flight: outcomes then reached the optimizer in batches that
    depended on timing."""
    experiment_id: sa.BindParameter[int] = sa.bindparam("experiment_id")

    def count(state: TaskState) -> sa.ScalarSelect[int]:
        where = (TASK.experiment_id == experiment_id, TASK.state == state)
        return sa.select(sa.func.count()).where(*where).scalar_subquery()

    outcome = sa.and_(TASK.experiment_id == EXPERIMENT.id, TASK.tell_pending.is_(True))
    return (
        sa.select(
            count(TaskState.PENDING).label("pending"),
            count(TaskState.RUNNING).label("running"),
            _failed_up_to(experiment_id).label("failed"),
            _any_success(experiment_id).label("succeeded"),
            TASK.id,
            TASK.state,
            TASK.candidate,
            TASK.metrics,
        )
        .select_from(_experiment.outerjoin(_task, outcome))
        .where(EXPERIMENT.id == experiment_id)
        .order_by(TASK.finished_at, TASK.id)
    )


REFILL_VIEW = _refill_view()

MARK_TOLD = (
    sa.update(_task)
    .where(TASK.id.in_(sa.bindparam("task_ids", expanding=True)))
    .values(tell_pending=False)
)

# Which of some candidate keys an experiment already has (the unique index answers).
KNOWN_KEYS = sa.select(TASK.candidate_key).where(
    TASK.experiment_id == sa.bindparam("experiment_id"),
    TASK.candidate_key.in_(sa.bindparam("keys", expanding=True)),
)

# Rows: every column but the clock; one execute with many rows is one multi-row INSERT.
INSERT_TASK = (
    sa.insert(_task).values(created_at=db_now()).returning(TASK.id, sort_by_parameter_order=True)
)

CANCEL_TASKS = (
    sa.update(_task)
    .where(
        TASK.experiment_id == sa.bindparam("b_experiment_id"),
        TASK.state.in_(sa.bindparam("states", expanding=True)),
    )
    .values(state=TaskState.CANCELLED, finished_at=db_now(), error=sa.bindparam("b_error"))
    .returning(TASK.id, TASK.attempt, TASK.worker_id)
)

IN_FLIGHT_OF = sa.select(
    sa.func.count().filter(TASK.state == TaskState.PENDING).label("pending"),
    sa.func.count().filter(TASK.state == TaskState.RUNNING).label("running"),
).where(TASK.experiment_id == sa.bindparam("experiment_id"), TASK.state.in_(IN_FLIGHT))

# After a failure: the failures (up to `failed_cap`) and whether anything succeeded.
FAILURES_OF = sa.select(
    _failed_up_to(sa.bindparam("experiment_id")).label("failed"),
    _any_success(sa.bindparam("experiment_id")).label("succeeded"),
)

FIRST_ERROR = (
    sa.select(TASK.error)
    .where(TASK.experiment_id == sa.bindparam("experiment_id"), TASK.state == TaskState.FAILED)
    .order_by(TASK.finished_at, TASK.id)
    .limit(1)
)

COUNT_PENDING = sa.select(sa.func.count()).where(
    TASK.experiment_id == sa.bindparam("experiment_id"), TASK.state == TaskState.PENDING
)

# --- events --------------------------------------------------------------------------------

# Bind parameters: `event_params`; one execute with many rows is one multi-row INSERT.
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


# --- artifacts --------------------------------------------------------------------------------

# Whether a finishing task's experiment has artifacts (ix_artifact_experiment_kind leads with
# it): only then does a completion or failure start the artifact clean-up (keep policy,
# checkpoints of finished tasks).
EXPERIMENT_HAS_ARTIFACTS = (
    sa.select(sa.literal(1))
    .select_from(_artifact)
    .where(_artifact.c.experiment_id == sa.bindparam("experiment_id"))
    .limit(1)
)
