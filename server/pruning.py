"""The pruner call site: after a heartbeat with metrics, should this task stop early?

The pruners (median rule, ASHA) live in `morphml.optimizers.pruners` and keep no state: they
decide from the first objective's per-step history of this task and of its experiment's other
tasks, which the store keeps in `task_metric`, so a restarted server decides the same. Only the
steps the pruner compares are read (`Pruner.horizon`).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Connection

from server.spec import build_pruner
from server.store import intermediate


def enabled(pruner_spec: dict[str, Any] | None) -> bool:
    """Whether an experiment's `pruner` (its spec's field) ever stops a task."""
    return pruner_spec is not None and bool(pruner_spec) and pruner_spec.get("name") != "none"


def stop_reason(
    connection: Connection, *, task_id: int, experiment_id: int, spec: dict[str, Any]
) -> str | None:
    """Why the experiment's pruner wants the task stopped, or None to let it continue."""
    pruner_spec = spec.get("pruner")
    if pruner_spec is None or not enabled(pruner_spec):
        return None
    metric = spec["objectives"][0]["metric"]
    pruner = build_pruner(spec)
    mine = values(intermediate.history(connection, task_id), metric)
    horizon = pruner.horizon(len(mine))
    if not mine or horizon is None:
        return None
    peers = intermediate.peer_histories(
        connection, experiment_id=experiment_id, task_id=task_id, up_to_step=horizon
    )
    histories = {str(peer): values(history, metric) for peer, history in peers.items()}
    if not pruner.should_stop(str(task_id), mine, histories):
        return None
    return f"{pruner_spec['name']} pruner"


def values(history: intermediate.History, metric: str) -> list[float]:
    """The metric's values step by step, oldest first (steps lacking it are skipped)."""
    return [float(report[metric]) for report in history.values() if metric in report]
