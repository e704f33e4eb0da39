"""The dashboard's tables: experiments with progress and first error, an experiment's task page
(sorted, filtered and paged in SQL), its failed tasks, and the workers.

Every function is one read-only unit (`server.db.read`): a page's counts and rows agree.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from server.db import db_now, read
from server.errors import NotFoundError
from server.models import EXPERIMENT, TASK, WORKER, TaskState
from server.workers import list_workers

# The task table's sort keys and the columns they order by (the id breaks ties: stable pages).
SORT_COLUMNS: dict[str, Any] = {
    "id": TASK.id,
    "state": TASK.state,
    "value": TASK.score,
    "attempt": TASK.attempt,
    "worker": TASK.worker_id,
    "finished": TASK.finished_at,
}
ERROR_PREVIEW_CHARS = 300
FAILED_SHOWN = 20


def objective_of(spec: dict[str, Any]) -> dict[str, str]:
    """The first objective (what the dashboard plots and ranks by)."""
    objectives = spec.get("objectives") or [{"metric": "val_accuracy"}]
    first = objectives[0]
    return {"metric": str(first["metric"]), "direction": str(first.get("direction", "maximize"))}


def value_of(score: float | None, objective: dict[str, str]) -> float | None:
    """The objective's own value from a task's score (scores are negated for minimize)."""
    if score is None:
        return None
    return score if objective["direction"] == "maximize" else -score


def experiment_header(connection: Connection, experiment_id: int) -> Any:
    """The experiment's id, name, spec and status; 404 when there is none."""
    row = connection.execute(
        sa.select(EXPERIMENT.id, EXPERIMENT.name, EXPERIMENT.spec, EXPERIMENT.status).where(
            EXPERIMENT.id == experiment_id
        )
    ).first()
    if row is None:
        raise NotFoundError(f"experiment {experiment_id} not found")
    return row


def experiments(engine: Engine, *, status: str | None, offset: int, limit: int) -> dict[str, Any]:
    """A page of experiments, newest first, each with what the experiments table shows."""
    with read(engine) as connection:
        query = sa.select(*_EXPERIMENT_ROW_COLUMNS)
        if status is not None:
            query = query.where(EXPERIMENT.status == status)
        count = connection.scalar(sa.select(sa.func.count()).select_from(query.subquery()))
        rows = connection.execute(
            query.order_by(EXPERIMENT.id.desc()).offset(offset).limit(limit)
        ).all()
        counts = _counts_by_experiment(connection, [row.id for row in rows])
        data = [_experiment_row(connection, row, counts.get(row.id, {})) for row in rows]
        return {"data": data, "count": count or 0, "now": _now(connection)}


# Not the optimizer state: it can be large and the table never shows it.
_EXPERIMENT_ROW_COLUMNS = (
    EXPERIMENT.id,
    EXPERIMENT.name,
    EXPERIMENT.status,
    EXPERIMENT.spec,
    EXPERIMENT.error,
    EXPERIMENT.max_evaluations,
    EXPERIMENT.created_at,
    EXPERIMENT.finished_at,
)


def _counts_by_experiment(connection: Connection, ids: list[int]) -> dict[int, dict[str, int]]:
    found: dict[int, dict[str, int]] = {}
    if not ids:
        return found
    query = (
        sa.select(TASK.experiment_id, TASK.state, sa.func.count())
        .where(TASK.experiment_id.in_(ids))
        .group_by(TASK.experiment_id, TASK.state)
    )
    for experiment_id, state, count in connection.execute(query):
        found.setdefault(experiment_id, {})[state] = int(count)
    return found


def _experiment_row(connection: Connection, row: Any, counts: dict[str, int]) -> dict[str, Any]:
    objective = objective_of(row.spec)
    best = connection.scalar(
        sa.select(sa.func.max(TASK.score)).where(
            TASK.experiment_id == row.id, TASK.state == TaskState.COMPLETED
        )
    )
    finished = sum(counts.get(state, 0) for state in ("completed", "failed", "pruned"))
    return {
        "id": row.id,
        "name": row.name,
        "status": row.status,
        "objective": objective,
        "best": value_of(best, objective),
        "done": finished,
        "budget": row.max_evaluations,
        "counts": {state.value: counts.get(state.value, 0) for state in TaskState},
        "first_error": row.error or _first_task_error(connection, row.id),
        "created_at": row.created_at,
        "finished_at": row.finished_at,
    }


def _first_task_error(connection: Connection, experiment_id: int) -> str | None:
    error = connection.scalar(
        sa.select(TASK.error)
        .where(TASK.experiment_id == experiment_id, TASK.state == TaskState.FAILED)
        .order_by(TASK.id)
        .limit(1)
    )
    return None if error is None else str(error)[:ERROR_PREVIEW_CHARS]


def task_page(
    engine: Engine,
    *,
    experiment_id: int,
    state: str | None,
    sort: str,
    descending: bool,
    offset: int,
    limit: int,
) -> dict[str, Any]:
    """One page of an experiment's tasks, ordered and filtered in SQL (indexes: see the
    0007 migration), with only the columns the table shows (no candidate, no histories)."""
    with read(engine) as connection:
        objective = objective_of(experiment_header(connection, experiment_id).spec)
        where = [TASK.experiment_id == experiment_id]
        if state is not None:
            where.append(TASK.state == state)
        count = connection.scalar(
            sa.select(sa.func.count()).select_from(TASK.id.table).where(*where)
        )
        rows = connection.execute(
            sa.select(*_TASK_ROW_COLUMNS)
            .where(*where)
            .order_by(*_order(sort, descending, objective))
            .offset(offset)
            .limit(limit)
        ).all()
        return {
            "data": [_task_row(row, objective) for row in rows],
            "count": count or 0,
            "objective": objective,
        }


_TASK_ROW_COLUMNS = (
    TASK.id,
    TASK.state,
    TASK.score,
    TASK.metrics,
    TASK.attempt,
    TASK.max_attempts,
    TASK.worker_id,
    TASK.budget,
    TASK.progress,
    sa.func.substr(TASK.error, 1, ERROR_PREVIEW_CHARS).label("error"),
    TASK.created_at,
    TASK.finished_at,
)


def _order(sort: str, descending: bool, objective: dict[str, str]) -> list[Any]:
    column = SORT_COLUMNS[sort]
    if sort == "value" and objective["direction"] == "minimize":
        descending = not descending  # value = -score
    if sort == "value":
        # Unscored tasks (pending, failed) last either way.
        ordered = column.desc().nulls_last() if descending else column.asc().nulls_last()
    else:
        ordered = column.desc() if descending else column.asc()
    return [ordered, TASK.id.desc() if descending else TASK.id.asc()]


def _task_row(row: Any, objective: dict[str, str]) -> dict[str, Any]:
    return {
        "id": row.id,
        "state": row.state,
        "value": value_of(row.score, objective),
        "metrics": row.metrics or {},
        "attempt": row.attempt,
        "max_attempts": row.max_attempts,
        "worker_id": row.worker_id,
        "budget": row.budget,
        "progress": row.progress,
        "error": row.error,
        "created_at": row.created_at,
        "finished_at": row.finished_at,
    }


def failures(engine: Engine, *, experiment_id: int) -> dict[str, Any]:
    """The first failed tasks with their errors, and how many failed in all."""
    with read(engine) as connection:
        experiment_header(connection, experiment_id)
        where = (TASK.experiment_id == experiment_id, TASK.state == TaskState.FAILED)
        count = connection.scalar(
            sa.select(sa.func.count()).select_from(TASK.id.table).where(*where)
        )
        rows = connection.execute(
            sa.select(TASK.id, TASK.attempt, TASK.error, TASK.worker_id, TASK.finished_at)
            .where(*where)
            .order_by(TASK.id)
            .limit(FAILED_SHOWN)
        ).all()
        data = [{**row._asdict(), "error": (row.error or "")[:2000]} for row in rows]
        return {"data": data, "count": count or 0}


def workers(engine: Engine) -> dict[str, Any]:
    """Every registered worker (the admin listing's status rule), newest contact first."""
    listing = list_workers(engine, offset=0, limit=1000)
    with read(engine) as connection:
        now = _now(connection)
    data = [worker.model_dump(exclude={"credential"}) for worker in listing.data]
    data.sort(key=lambda w: (w["status"] != "online", -w["last_seen_at"].timestamp()))
    return {"data": data, "count": listing.count, "now": now}


def worker_names(connection: Connection, ids: set[int]) -> dict[int, str]:
    if not ids:
        return {}
    rows = connection.execute(sa.select(WORKER.id, WORKER.name).where(WORKER.id.in_(ids)))
    return {worker_id: name for worker_id, name in rows}


def _now(connection: Connection) -> datetime | None:
    return connection.scalar(sa.select(db_now()))
