"""Database tables (SQLModel) and the state enums; the schema itself comes only from Alembic."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, cast

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from server.db import UTCDateTime


class ExperimentStatus(StrEnum):
    """Lifecycle of an experiment."""

    RUNNING = "running"
    """Tasks are queued and claimed; the optimizer is asked for more as results arrive."""
    PAUSED = "paused"
    """Nothing new is claimed or asked for; running tasks finish."""
    COMPLETED = "completed"
    """Budget reached (or space exhausted) and every task finished."""
    CANCELLED = "cancelled"
    """Stopped by a user; pending and running tasks were cancelled."""
    FAILED = "failed"
    """The optimizer raised; `error` says why."""


class TaskState(StrEnum):
    """Lifecycle of one evaluation (docs/architecture.md, "The life of a task")."""

    PENDING = "pending"
    """Waiting for a worker."""
    RUNNING = "running"
    """Claimed under a lease; the worker heartbeats to keep it."""
    COMPLETED = "completed"
    """Finished with final metrics."""
    FAILED = "failed"
    """Non-retryable error, or attempts exhausted."""
    PRUNED = "pruned"
    """Stopped early by the experiment's pruner."""
    CANCELLED = "cancelled"
    """Experiment cancelled (or its time budget ran out) before the task finished."""


FINISHED_STATES = (TaskState.COMPLETED, TaskState.FAILED, TaskState.PRUNED, TaskState.CANCELLED)


class WorkerStatus(StrEnum):
    """Whether a worker has been heard from recently."""

    ONLINE = "online"
    """Seen within `worker_offline_seconds`."""
    OFFLINE = "offline"
    """Silent for longer; its leases expire on their own."""


class EventKind(StrEnum):
    """What a TaskEvent records."""

    CREATED = "created"
    CLAIMED = "claimed"
    RETRIED = "retried"
    """A retryable failure put the task back to pending."""
    LEASE_EXPIRED = "lease_expired"
    """Heartbeats stopped: the reaper put the task back to pending (or failed it)."""
    RESUMED = "resumed"
    """The attempt that completed went on from a checkpoint (detail: `from_epoch`); recorded
    with its result, from the `resumed_from_epoch` its final metrics carry."""
    COMPLETED = "completed"
    FAILED = "failed"
    PRUNED = "pruned"
    CANCELLED = "cancelled"


def _json() -> Any:
    return Field(default_factory=dict, sa_type=sa.JSON, sa_column_kwargs={"nullable": False})


def _stamp(nullable: bool = True) -> Any:
    return Field(default=None, sa_type=UTCDateTime, sa_column_kwargs={"nullable": nullable})


class Experiment(SQLModel, table=True):
    """One search: its spec, its optimizer's persisted state, budget and status."""

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(sa_type=sa.String(200))
    status: str = Field(sa_type=sa.String(16), index=True)
    spec: dict[str, Any] = _json()
    optimizer_state: dict[str, Any] | None = Field(default=None, sa_type=sa.JSON)
    priority: int = 0
    parallelism: int = 1
    lease_seconds: float = 60.0
    max_attempts: int = 3
    max_evaluations: int | None = None
    max_seconds: float | None = None
    need_gpus: int = 0
    need_gpu_memory_mb: int = 0
    need_labels: dict[str, str] = _json()
    tasks_created: int = 0
    error: str | None = Field(default=None, sa_type=sa.Text)
    created_at: datetime | None = _stamp(nullable=False)
    started_at: datetime | None = _stamp()
    finished_at: datetime | None = _stamp()
    # Bumped by every write to the experiment (refill, lifecycle): a refill that asked its
    # optimizer outside any lock writes its result only if the version it read is still current.
    version: int = Field(
        default=0, sa_column_kwargs={"server_default": sa.text("0"), "nullable": False}
    )


class Worker(SQLModel, table=True):
    """A registered `morphml-worker` agent and what it reported about itself."""

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(sa_type=sa.String(200))
    host: str = Field(sa_type=sa.String(255))
    resources: dict[str, Any] = _json()
    labels: dict[str, str] = _json()
    status: str = Field(sa_type=sa.String(16))
    created_at: datetime | None = _stamp(nullable=False)
    last_seen_at: datetime | None = _stamp(nullable=False)
    # The long-poll wait of its last claim: silent for two of them, it is shown offline.
    poll_seconds: float | None = None


class Task(SQLModel, table=True):
    """One evaluation of one candidate, with its lease while a worker holds it."""

    __table_args__ = (
        # The same architecture at the same budget is never trained twice in one experiment.
        sa.UniqueConstraint("experiment_id", "candidate_key", name="uq_task_experiment_candidate"),
        # Claim: the oldest pending task of one experiment is an ordered index scan, LIMIT 1.
        sa.Index("ix_task_state_experiment_id", "state", "experiment_id", "id"),
        sa.Index("ix_task_state_lease", "state", "lease_expires_at"),
        # Refill: this experiment's outcomes not yet told to its optimizer.
        sa.Index("ix_task_tell_pending_experiment", "tell_pending", "experiment_id"),
        # The dashboard's task table, sorted by value or by finishing time, a page at a time.
        sa.Index("ix_task_experiment_score", "experiment_id", "score"),
        sa.Index("ix_task_experiment_finished", "experiment_id", "finished_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    experiment_id: int = Field(foreign_key="experiment.id", index=True)
    state: str = Field(sa_type=sa.String(16))
    candidate: dict[str, Any] = _json()
    candidate_key: str = Field(sa_type=sa.String(120))
    budget: float | None = None
    attempt: int = 1
    max_attempts: int = 3
    lease_token: str | None = Field(default=None, sa_type=sa.String(64))
    lease_expires_at: datetime | None = _stamp()
    worker_id: int | None = Field(default=None, foreign_key="worker.id", index=True)
    progress: float | None = None
    step: int | None = None
    metrics: dict[str, float] | None = Field(default=None, sa_type=sa.JSON)
    score: float | None = None
    error: str | None = Field(default=None, sa_type=sa.Text)
    created_at: datetime | None = _stamp(nullable=False)
    claimed_at: datetime | None = _stamp()
    heartbeat_at: datetime | None = _stamp()
    finished_at: datetime | None = _stamp()
    # Finished, and its outcome waits for the experiment's next refill to be told (in that
    # refill's transaction, so each outcome is told exactly once).
    tell_pending: bool = Field(
        default=False, sa_column_kwargs={"server_default": sa.false(), "nullable": False}
    )
    # Failures of the worker's machine (full disk, no process start): retried without using
    # an attempt, up to a cap.
    environment_failures: int = Field(
        default=0, sa_column_kwargs={"server_default": sa.text("0"), "nullable": False}
    )
    # A retried task is not handed straight back to the worker that just gave it up.
    avoid_worker_id: int | None = None
    avoid_until: datetime | None = _stamp()
    # The lease token a requeue took back: the late result of that lease still counts while the
    # task waits unclaimed (never over a newer lease).
    released_token: str | None = Field(default=None, sa_type=sa.String(64))


class TaskEvent(SQLModel, table=True):
    """Append-only history of a task: claimed, lease expired, completed, ..."""

    __tablename__ = "task_event"

    id: int | None = Field(default=None, primary_key=True)
    task_id: int = Field(foreign_key="task.id", index=True)
    experiment_id: int = Field(foreign_key="experiment.id", index=True)
    kind: str = Field(sa_type=sa.String(32))
    attempt: int = 1
    worker_id: int | None = None
    detail: dict[str, Any] = _json()
    created_at: datetime | None = _stamp(nullable=False)


class TaskMetric(SQLModel, table=True):
    """Intermediate metrics a heartbeat carried (one row per report, appended, never updated):
    the pruner reads only the steps it compares, never a task's whole history."""

    __tablename__ = "task_metric"
    __table_args__ = (
        # The pruner's question: this experiment's reports up to a step.
        sa.Index("ix_task_metric_experiment_step", "experiment_id", "step"),
        sa.Index("ix_task_metric_task_step", "task_id", "step"),
    )

    id: int | None = Field(default=None, primary_key=True)
    task_id: int = Field(foreign_key="task.id")
    experiment_id: int = Field(foreign_key="experiment.id")
    step: int
    metrics: dict[str, float] = _json()
    created_at: datetime | None = _stamp(nullable=False)


class ArtifactState(StrEnum):
    """Where an artifact's bytes are."""

    STORED = "stored"
    """In the artifact store under `storage_key`, with this size and sha256."""
    MISSING = "missing"
    """The store refused or could not be reached during the upload: `reason` says why."""
    DELETING = "deleting"
    """Dropped (keep policy, its task finished): the bytes are deleted after the commit; a row
    still here means that delete failed and the reaper tries again."""


class Artifact(SQLModel, table=True):
    """A file a task produced (final weights, a checkpoint, an evaluator's file); its bytes live
    in the artifact store (`server.artifacts`), written before this row names them."""

    __table_args__ = (
        sa.UniqueConstraint("task_id", "name", name="uq_artifact_task_name"),
        # An experiment's artifacts (listings, its size limit, the keep policy).
        sa.Index("ix_artifact_experiment_kind", "experiment_id", "kind"),
        # The reaper's retry of failed deletes.
        sa.Index("ix_artifact_status", "status"),
    )

    id: int | None = Field(default=None, primary_key=True)
    experiment_id: int = Field(foreign_key="experiment.id")
    task_id: int = Field(foreign_key="task.id")
    name: str = Field(sa_type=sa.String(128))
    kind: str = Field(sa_type=sa.String(16))
    storage_key: str | None = Field(default=None, sa_type=sa.String(512))
    size: int = Field(default=0, sa_type=sa.BigInteger)
    sha256: str = Field(sa_type=sa.String(64))
    status: str = Field(sa_type=sa.String(16))
    reason: str | None = Field(default=None, sa_type=sa.Text)
    epoch: int | None = None
    created_at: datetime | None = _stamp(nullable=False)


def _columns(table: type[SQLModel]) -> sa.ColumnCollection[str, sa.Column[Any]]:
    return cast(sa.Table, table.__table__).c  # type: ignore[attr-defined]


# Typed column handles for SQL expressions (the class attributes type as plain Python values).
EXPERIMENT = _columns(Experiment)
WORKER = _columns(Worker)
TASK = _columns(Task)
EVENT = _columns(TaskEvent)
TASK_METRIC = _columns(TaskMetric)
ARTIFACT = _columns(Artifact)
