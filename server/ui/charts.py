"""The experiment page's charts, computed in SQL and bounded in size whatever the experiment's:
convergence, Pareto front, which choices matter, learning curves.

Each answer is a few thousand points at most, so a browser polling a 100,000-task experiment
draws the same small picture every few seconds.
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from server.db import read
from server.models import TASK, TaskState
from server.store import intermediate
from server.ui.listings import experiment_header, objective_of, value_of

MAX_POINTS = 2000  # points drawn per chart
IMPORTANCE_TASKS = 5000  # the latest completed tasks whose choices are compared
TOP_CANDIDATES = 25  # lines in the parallel-coordinates view
CURVE_TASKS = 40  # learning curves drawn


def convergence(engine: Engine, *, experiment_id: int) -> dict[str, Any]:
    """Each completed evaluation's value in finishing order, and the best so far. Over
    `MAX_POINTS` evaluations, an even sample of them plus every one that improved the best."""
    with read(engine) as connection:
        objective = objective_of(experiment_header(connection, experiment_id).spec)
        rows = connection.execute(
            sa.select(TASK.id, TASK.score)
            .where(
                TASK.experiment_id == experiment_id,
                TASK.state == TaskState.COMPLETED,
                TASK.score.is_not(None),
            )
            .order_by(TASK.finished_at, TASK.id)
        ).all()
    stride = max(1, -(-len(rows) // MAX_POINTS))  # ceil: MAX_POINTS at most
    points, best, best_score = [], [], None
    for index, (task_id, score) in enumerate(rows):
        improved = best_score is None or score > best_score
        if improved:
            best_score = score
            best.append([index + 1, value_of(score, objective), task_id])
        if improved or index % stride == 0:
            points.append([index + 1, value_of(score, objective), task_id])
    return {"objective": objective, "total": len(rows), "points": points, "best": best}


def pareto(engine: Engine, *, experiment_id: int) -> dict[str, Any]:
    """Completed tasks on the first two objectives, those on the Pareto front (over every
    objective) marked; the rest sampled down to `MAX_POINTS`."""
    with read(engine) as connection:
        spec = experiment_header(connection, experiment_id).spec
        objectives = [objective_of({"objectives": [o]}) for o in spec.get("objectives", [])]
        if len(objectives) < 2:
            return {"objectives": objectives, "front": [], "others": [], "total": 0}
        values = [TASK.metrics[o["metric"]].as_float() for o in objectives]
        rows = connection.execute(
            sa.select(TASK.id, *values).where(
                TASK.experiment_id == experiment_id, TASK.state == TaskState.COMPLETED
            )
        ).all()
    points = [(row[0], list(row[1:])) for row in rows if all(v is not None for v in row[1:])]
    on_front = _front(points, [o["direction"] == "maximize" for o in objectives])
    front = [[task_id, *vector] for task_id, vector in points if task_id in on_front]
    others = [[task_id, *vector] for task_id, vector in points if task_id not in on_front]
    stride = max(1, -(-len(others) // MAX_POINTS))
    return {
        "objectives": objectives,
        "front": sorted(front, key=lambda p: p[1]),
        "others": others[::stride],
        "total": len(points),
    }


def _front(points: list[tuple[int, list[float]]], maximize: list[bool]) -> set[int]:
    """Ids of the non-dominated points: sorted best-first on every objective, a point is on
    the front unless a front point seen before it dominates it (O(n * front size))."""
    signed = [
        (task_id, [v if up else -v for v, up in zip(vec, maximize, strict=True)])
        for task_id, vec in points
    ]
    signed.sort(key=lambda p: [-v for v in p[1]])
    front: list[list[float]] = []
    ids: set[int] = set()
    for task_id, vector in signed:
        if not any(_dominates(kept, vector) for kept in front):
            front.append(vector)
            ids.add(task_id)
    return ids


def _dominates(a: list[float], b: list[float]) -> bool:
    return all(x >= y for x, y in zip(a, b, strict=True)) and a != b


def importance(engine: Engine, *, experiment_id: int) -> dict[str, Any]:
    """For each decision variable, the objective by the value chosen (count, mean, best), the
    variables ranked by how far their values' means spread; and the top candidates' choices
    for the parallel-coordinates view. Over the latest `IMPORTANCE_TASKS` completed tasks."""
    with read(engine) as connection:
        objective = objective_of(experiment_header(connection, experiment_id).spec)
        rows = connection.execute(
            sa.select(TASK.id, TASK.score, TASK.candidate["architecture"]["config"])
            .where(
                TASK.experiment_id == experiment_id,
                TASK.state == TaskState.COMPLETED,
                TASK.score.is_not(None),
            )
            .order_by(TASK.id.desc())
            .limit(IMPORTANCE_TASKS)
        ).all()
    samples = [(task_id, value_of(score, objective), _config(raw)) for task_id, score, raw in rows]
    top = sorted(samples, key=lambda s: s[1] or 0.0, reverse=objective["direction"] == "maximize")
    return {
        "objective": objective,
        "tasks": len(samples),
        "variables": _variables(samples, objective["direction"] == "maximize"),
        "top": [{"task_id": t, "value": v, "config": c} for t, v, c in top[:TOP_CANDIDATES]],
    }


def _config(raw: Any) -> dict[str, str]:
    """A candidate's choices as display strings (JSON values of any kind, hostile ones too)."""
    if isinstance(raw, str):  # some drivers hand back the JSON text of a sub-document
        try:
            raw = json.loads(raw)
        except ValueError:
            return {}
    if not isinstance(raw, dict):
        return {}
    return {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in raw.items()}


def _variables(
    samples: list[tuple[int, Any, dict[str, str]]], maximize: bool
) -> list[dict[str, Any]]:
    groups: dict[str, dict[str, list[float]]] = {}
    for _, value, config in samples:
        for name, choice in config.items():
            groups.setdefault(name, {}).setdefault(choice, []).append(float(value))
    variables: list[dict[str, Any]] = []
    for name, by_choice in groups.items():
        choices = [
            {
                "value": choice,
                "count": len(vals),
                "mean": sum(vals) / len(vals),
                "best": max(vals) if maximize else min(vals),
            }
            for choice, vals in sorted(by_choice.items(), key=lambda kv: _choice_order(kv[0]))
        ]
        means = [float(c["mean"]) for c in choices]  # type: ignore[arg-type]
        variables.append({"name": name, "spread": max(means) - min(means), "choices": choices})
    return sorted(variables, key=lambda v: -float(v["spread"]))


def _choice_order(choice: str) -> tuple[int, float, str]:
    """Numbers in numeric order, then everything else as text."""
    try:
        return (0, float(choice), "")
    except ValueError:
        return (1, 0.0, choice)


def curves(engine: Engine, *, experiment_id: int) -> dict[str, Any]:
    """Learning curves (the objective's metric by step) of the running tasks and the latest
    finished ones, `CURVE_TASKS` at most; each with its state, so pruned ones can be marked."""
    with read(engine) as connection:
        objective = objective_of(experiment_header(connection, experiment_id).spec)
        tasks = _curve_tasks(connection, experiment_id)
        histories = intermediate.histories_of(connection, [task_id for task_id, _ in tasks])
    metric = objective["metric"]
    data = []
    for task_id, state in tasks:
        steps = [
            [step, metrics[metric]]
            for step, metrics in sorted(histories.get(task_id, {}).items())
            if isinstance(metrics.get(metric), int | float)
        ]
        if steps:
            data.append({"task_id": task_id, "state": state, "steps": steps})
    return {"objective": objective, "tasks": data}


def _curve_tasks(connection: Connection, experiment_id: int) -> list[tuple[int, str]]:
    query = (
        sa.select(TASK.id, TASK.state)
        .where(TASK.experiment_id == experiment_id, TASK.state != TaskState.PENDING)
        .order_by(TASK.id.desc())
        .limit(CURVE_TASKS)
    )
    return [(task_id, state) for task_id, state in connection.execute(query)]
