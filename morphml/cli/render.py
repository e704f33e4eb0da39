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
    """Completed evaluations, best first: identity, size, metrics, then the candidate itself
    (`candidate_hash`, `candidate_budget`, `config`, `architecture`), so the winner can be rebuilt
    with `Architecture.from_dict(row["architecture"])`."""
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
        row.update(
            {
                "candidate_hash": architecture.hash,
                "candidate_budget": task.candidate.get("budget"),
                "config": architecture.config,
                "architecture": task.candidate["architecture"],
            }
        )
        rows.append(row)
    return rows


def rows_table(rows: list[dict[str, Any]], title: str, columns: list[str] | None = None) -> Table:
    columns = columns or list(dict.fromkeys(key for row in rows for key in row))
    table = Table(*columns, title=title, show_edge=False)  # two columns more on 80-wide terminals
    for row in rows:
        table.add_row(*(_cell(row.get(c)) for c in columns))
    return table


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


def leaderboard_columns(experiment: Experiment, rows: list[dict[str, Any]]) -> list[str]:
    """The columns an 80-column terminal has room for: identity, size, the objectives, and the
    training time when the evaluator reports one (`train_seconds`, or the table's `train_time`)."""
    metrics = [o["metric"] for o in objectives(experiment)]
    present = {key for row in rows for key in row}
    times = [name for name in ("train_seconds", "train_time") if name in present][:1]
    return ["rank", "task", "hash", "params", "mflops", *metrics, *times]


def rows_csv(rows: list[dict[str, Any]]) -> str:
    """One row per evaluation; nested values (`config`, `architecture`) as JSON text."""
    columns = list(dict.fromkeys(key for row in rows for key in row))
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns)
    writer.writeheader()
    for row in rows:
        writer.writerow(
            {k: json.dumps(v) if isinstance(v, dict | list) else v for k, v in row.items()}
        )
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


def one_line(text: str, width: int | None = None) -> str:
    """`text` on one line (whitespace collapsed), cut to `width` characters with an ellipsis."""
    line = " ".join(str(text).split())
    if width is not None and len(line) > width:
        return line[: max(0, width - 1)] + "…"
    return line


def counts_text(experiment: Experiment) -> str:
    """`28 completed, 2 failed, 1 running` (states with no task left out; never empty)."""
    counts = experiment.counts
    order = ("completed", "failed", "running", "pending", "pruned", "cancelled")
    parts = [f"{counts[state]} {state}" for state in order if counts.get(state)]
    return ", ".join(parts) or "no tasks yet"


def best_text(experiment: Experiment) -> str:
    return f"{experiment.best.value:.4g}" if experiment.best else "-"


def experiment_row(experiment: Experiment, error_width: int = 40) -> dict[str, Any]:
    """One line of `morphml experiments`."""
    return {
        "id": experiment.id,
        "name": experiment.name,
        "status": experiment.status,
        "done": experiment.done,
        "failed": experiment.counts.get("failed", 0),
        "budget": experiment.max_evaluations,
        "best": experiment.best.value if experiment.best else None,
        "error": one_line(experiment.error, error_width) if experiment.error else "",
    }
