"""The pruner call site: after a heartbeat with metrics, should this task stop early?

The pruners (median rule, ASHA) live in `morphml.optimizers.pruners` and keep no state: they
decide from the first objective's per-step history of this task and of its experiment's other
tasks, which the server stores in `Task.intermediate`, so a restarted server decides the same.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from morphml.errors import MorphMLError
from morphml.optimizers.pruners import make_pruner
from server.db import transaction
from server.errors import InvalidSpecError
from server.models import EXPERIMENT, TASK, Task


def validate_pruner(pruner: dict[str, Any] | None, objectives: list[dict[str, Any]]) -> None:
    """Refuse a pruner the library cannot build; the message names the field."""
    try:
        make_pruner(pruner, objectives)
    except MorphMLError as exc:
        raise InvalidSpecError(str(exc)) from None


def stop_reason(engine: Engine, *, task: Task) -> str | None:
    """Why the experiment's pruner wants `task` stopped, or None to let it continue."""
    with transaction(engine) as session:
        query = sa.select(EXPERIMENT.spec).where(EXPERIMENT.id == task.experiment_id)
        spec: dict[str, Any] = session.scalar(query) or {}
        pruner_spec = spec.get("pruner")
        if not pruner_spec or pruner_spec.get("name") == "none":
            return None
        rows = session.execute(
            sa.select(TASK.id, TASK.intermediate).where(TASK.experiment_id == task.experiment_id)
        ).all()
    metric = spec["objectives"][0]["metric"]
    histories = {str(task_id): history(intermediate, metric) for task_id, intermediate in rows}
    mine = history(task.intermediate, metric)
    if not mine or not make_pruner(pruner_spec, spec["objectives"]).should_stop(
        str(task.id), mine, histories
    ):
        return None
    return f"{pruner_spec['name']} pruner"


def history(intermediate: dict[str, Any], metric: str) -> list[float]:
    """The metric's values step by step, oldest first (steps lacking it are skipped)."""
    steps = sorted(intermediate, key=lambda step: int(step) if step.isdigit() else -1)
    return [float(intermediate[step][metric]) for step in steps if metric in intermediate[step]]
