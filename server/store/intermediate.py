"""Intermediate metrics: appended one row per report (`task_metric`), read back as histories.

A history is `{step: metrics}` in step order; a step reported twice (a heartbeat retried, or a
retried attempt training again) keeps its last report.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy.engine import Connection

from server.store import sql as S

# Reports kept per task: a long or hostile run cannot grow the table without bound.
MAX_STEPS_PER_TASK = 1000

History = dict[int, dict[str, float]]


def append(
    connection: Connection,
    *,
    task_id: int,
    experiment_id: int,
    step: int | None,
    metrics: dict[str, float],
) -> None:
    """One report; a missing step is the next position; nothing past `MAX_STEPS_PER_TASK`."""
    params = {
        "b_task_id": task_id,
        "b_experiment_id": experiment_id,
        "b_step": step,
        "b_metrics": metrics,
        "b_max": MAX_STEPS_PER_TASK,
    }
    connection.execute(S.APPEND_METRICS, params)


def history(connection: Connection, task_id: int) -> History:
    rows = connection.execute(S.TASK_HISTORY, {"task_id": task_id})
    return {step: metrics for step, metrics in rows}


def peer_histories(
    connection: Connection, *, experiment_id: int, task_id: int, up_to_step: int
) -> dict[int, History]:
    """The other tasks' reports up to a step: what a pruner compares at that step, and no more
    (its cost follows the tasks that reported, not the experiment's size)."""
    params = {"experiment_id": experiment_id, "task_id": task_id, "up_to_step": up_to_step}
    return _by_task(connection.execute(S.PEER_HISTORIES, params))


def histories_of(connection: Connection, task_ids: list[int]) -> dict[int, History]:
    """Several tasks' histories in one query (a page of a task listing)."""
    if not task_ids:
        return {}
    return _by_task(connection.execute(S.HISTORIES_OF, {"task_ids": task_ids}))


def _by_task(rows: Iterable[Any]) -> dict[int, History]:
    found: dict[int, History] = {}
    for task_id, step, metrics in rows:
        found.setdefault(task_id, {})[step] = metrics
    return found


def as_public(history: History) -> dict[str, Any]:
    """The REST API's `intermediate`: steps as string keys (JSON object keys)."""
    return {str(step): metrics for step, metrics in history.items()}


def last_metrics(history: History) -> dict[str, float]:
    """The latest step's report (a pruned task's final metrics)."""
    return dict(history[max(history)]) if history else {}
