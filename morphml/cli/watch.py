"""`morphml watch`: a live progress bar until an experiment reaches a final status."""

from __future__ import annotations

import time

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from morphml.client import Client, Experiment

FINAL = ("completed", "cancelled", "failed")


def _describe(experiment: Experiment) -> str:
    best = f"{experiment.best.value:.4f}" if experiment.best else "-"
    running = experiment.counts.get("running", 0)
    return f"best {best}  busy workers {running}  status {experiment.status}"


def watch_experiment(
    client: Client, experiment_id: int, console: Console, poll_seconds: float = 1.0
) -> Experiment:
    """Poll until the experiment is final; returns its last state."""
    experiment = client.experiment(experiment_id)
    total = experiment.max_evaluations
    columns = (
        TextColumn(f"[bold]experiment {experiment_id}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.description}"),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        bar = progress.add_task(_describe(experiment), total=total)
        while True:
            progress.update(bar, completed=experiment.done, description=_describe(experiment))
            if experiment.status in FINAL:
                return experiment
            time.sleep(poll_seconds)
            experiment = client.experiment(experiment_id)
