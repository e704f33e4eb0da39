"""Experiment transitions: insert (then its first refill), pause, resume and cancel. Each locks
the experiment row before any of its tasks (the lock order, store/__init__.py) and bumps its
version, so a refill computed before the change is not written after it."""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Connection, Engine

from server.db import db_now, unit
from server.errors import ConflictError, NotFoundError
from server.models import ExperimentStatus
from server.store import sql as S
from server.store.refill import cancel_tasks, refill
from server.store.sql import Row
from server.wakeup import announce_tasks


def insert(engine: Engine, *, values: dict[str, Any], refill_inline: bool = True) -> int:
    """A validated experiment (`values`: its columns) running, with its first tasks queued
    (unless the caller runs that first refill: `refill_inline=False`)."""
    with unit(engine) as connection:
        row = {**values, "status": ExperimentStatus.RUNNING, "tasks_created": 0}
        stamped = S.INSERT_EXPERIMENT.values(created_at=db_now(), started_at=db_now())
        experiment_id: int = connection.execute(stamped, row).scalar_one()
    if refill_inline:
        refill(engine, experiment_id)  # its first tasks, asked with no transaction open
    return experiment_id


def change_status(
    engine: Engine, *, experiment_id: int, action: str, refill_inline: bool = True
) -> bool:
    """pause: running -> paused; resume: paused -> running; cancel: running|paused -> cancelled.
    Whether a refill is due (after a resume)."""
    with unit(engine) as connection:
        experiment = connection.execute(S.LOCK_EXPERIMENT, {"experiment_id": experiment_id}).first()
        if experiment is None:
            raise NotFoundError(f"experiment {experiment_id} not found")
        _LIFECYCLE[action](connection, experiment)
    due = action == "resume"  # outcomes that arrived while it was paused
    if due and refill_inline:
        refill(engine, experiment_id)
    return due


def _pause(connection: Connection, experiment: Row) -> None:
    _require_status(experiment, (ExperimentStatus.RUNNING,), "pause")
    _set(connection, experiment, status=ExperimentStatus.PAUSED)


def _resume(connection: Connection, experiment: Row) -> None:
    _require_status(experiment, (ExperimentStatus.PAUSED,), "resume")
    _set(connection, experiment, status=ExperimentStatus.RUNNING)
    waiting = connection.execute(S.COUNT_PENDING, {"experiment_id": experiment.id}).scalar_one()
    if waiting:
        announce_tasks(connection, waiting)  # its pending tasks are claimable again


def _cancel(connection: Connection, experiment: Row) -> None:
    _require_status(experiment, (ExperimentStatus.RUNNING, ExperimentStatus.PAUSED), "cancel")
    cancel_tasks(connection, experiment.id, S.IN_FLIGHT, "experiment cancelled")
    _set(connection, experiment, status=ExperimentStatus.CANCELLED, finished_at=db_now())


def _set(connection: Connection, experiment: Row, **values: Any) -> None:
    connection.execute(S.SET_EXPERIMENT.values(**values), {"experiment_id": experiment.id})


def _require_status(experiment: Row, allowed: tuple[ExperimentStatus, ...], action: str) -> None:
    if experiment.status not in allowed:
        raise ConflictError(f"cannot {action} an experiment that is {experiment.status}")


_LIFECYCLE = {"pause": _pause, "resume": _resume, "cancel": _cancel}
