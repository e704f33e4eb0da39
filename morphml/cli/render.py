"""Turn experiments and tasks into leaderboard rows, tables, JSON and CSV."""

from __future__ import annotations

import csv
import io
import json
import math
from typing import Any

from rich.table import Table

from morphml.architecture import Architecture
from morphml.client import Experiment, Task


def objectives(experiment: Experiment) -> list[dict[str, str]]:
    found = experiment.spec.get("objectives") or [{"metric": "val_accuracy"}]
    return [{"metric": o["metric"], "direction": o.get("direction", "maximize")} for o in found]


def ranked(experiment: Experiment, tasks: list[Task]) -> list[Task]:
    """Completed tasks, best first by the first objective."""
    first = objectives(experiment)[0]
    sign = 1.0 if first["direction"] == "maximize" else -1.0

    def score(task: Task) -> float:
        value = (task.metrics or {}).get(first["metric"])
        return -math.inf if value is None else sign * value

    done = [t for t in tasks if t.state == "completed" and t.metrics]
    return sorted(done, key=score, reverse=True)


def result_rows(experiment: Experiment, tasks: list[Task]) -> list[dict[str, Any]]:
    rows = []
    for rank, task in enumerate(ranked(experiment, tasks), start=1):
        architecture = Architecture.from_dict(task.candidate["architecture"])
        row: dict[str, Any] = {
            "rank": rank,
            "task": task.id,
            "hash": architecture.hash[:12],
            "params": architecture.num_params,
            "mflops": round(architecture.flops / 1e6, 3),
        }
        row.update(task.metrics or {})
        rows.append(row)
    return rows


def rows_table(rows: list[dict[str, Any]], title: str, columns: list[str] | None = None) -> Table:
    columns = columns or list(dict.fromkeys(key for row in rows for key in row))
    table = Table(*columns, title=title)
    for row in rows:
        table.add_row(*(_cell(row.get(c)) for c in columns))
    return table


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


def leaderboard_columns(experiment: Experiment) -> list[str]:
    """The columns a terminal has room for: identity, size, the objectives, training time."""
    metrics = [o["metric"] for o in objectives(experiment)]
    return ["rank", "task", "hash", "params", "mflops", *metrics, "train_seconds"]


def rows_csv(rows: list[dict[str, Any]]) -> str:
    columns = list(dict.fromkeys(key for row in rows for key in row))
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def rows_json(rows: list[dict[str, Any]]) -> str:
    return json.dumps(rows, indent=2)


def convergence(experiment: Experiment, tasks: list[Task]) -> list[tuple[int, float, float]]:
    """(evaluation number, value, best so far) in completion order, for the first objective."""
    first = objectives(experiment)[0]
    better = max if first["direction"] == "maximize" else min
    done = [
        t for t in tasks if t.state == "completed" and t.metrics and first["metric"] in t.metrics
    ]
    done.sort(key=lambda t: (t.finished_at is None, t.finished_at, t.id))
    points, best = [], None
    for index, task in enumerate(done, start=1):
        value = float((task.metrics or {})[first["metric"]])
        best = value if best is None else better(best, value)
        points.append((index, value, best))
    return points
