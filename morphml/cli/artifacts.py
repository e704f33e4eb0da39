"""`morphml artifacts` and `morphml download`: an experiment's kept weights beside their
task's objective value, and a task's artifact (by default the best task's weights) downloaded."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from morphml.cli import render
from morphml.client import Artifact, Client
from morphml.errors import MorphMLError

KIND_ORDER = {"weights": 0, "file": 1, "checkpoint": 2}


def artifact_rows(client: Client, experiment_id: int) -> list[dict[str, Any]]:
    """One row per artifact: weights first, best task first (by the first objective)."""
    experiment = client.experiment(experiment_id)
    metric = render.objectives(experiment)[0]["metric"]
    ranked = render.ranked(experiment, client.tasks(experiment_id))
    rank = {task.id: position for position, task in enumerate(ranked)}
    values = {task.id: (task.metrics or {}).get(metric) for task in ranked}
    found = client.artifacts(experiment_id)
    found.sort(key=lambda a: (KIND_ORDER[a.kind], rank.get(a.task_id, len(rank)), a.name))
    return [_row(artifact, metric, values.get(artifact.task_id)) for artifact in found]


def _row(artifact: Artifact, metric: str, value: float | None) -> dict[str, Any]:
    return {
        "task": artifact.task_id,
        "name": artifact.name,
        "kind": artifact.kind,
        metric: value,
        "size": _size(artifact.size),
        "status": artifact.status if artifact.reason is None else f"missing: {artifact.reason}",
        "sha256": artifact.sha256[:12],
    }


def _size(size: int) -> str:
    return f"{size / 1e6:.2f} MB" if size >= 100_000 else f"{size / 1e3:.1f} kB"


def best_weights(client: Client, experiment_id: int) -> Artifact:
    """The best completed task's stored weights; a clear error when it has none."""
    best = client.best(experiment_id)
    return task_weights(client, best.id, f"experiment {experiment_id}'s best task {best.id}")


def task_weights(client: Client, task_id: int, who: str | None = None) -> Artifact:
    """The task's stored weights; an error naming `who` (default: the task) when it has none."""
    kept = [a for a in client.task_artifacts(task_id) if a.kind == "weights"]
    stored = [a for a in kept if a.status == "stored"]
    if stored:
        return stored[0]
    why = f"missing: {kept[0].reason}" if kept else "its evaluator saved none, or they were deleted"
    raise MorphMLError(f"{who or f'task {task_id}'} has no weights ({why})")


def weights_note(weights: Path, class_name: str) -> str:
    """The comment heading exported source whose trained weights were downloaded beside it."""
    return (
        f"# Trained weights: {weights} (the state_dict the worker trained). Load them with\n"
        f"# net = {class_name}(); net.load_state_dict(torch.load({str(weights)!r},\n"
        "# weights_only=True)); net.eval()\n"
    )


def download(client: Client, task_id: int, name: str, output: Path | None) -> Path:
    return client.download_artifact(task_id, name, output or Path(name))
