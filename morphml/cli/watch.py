"""`morphml watch`: a live progress bar until an experiment reaches a final status.

Two lines that fit an 80-column terminal: the bar (evaluations done / budget, elapsed time), then
the best value, workers online, tasks running, failed tasks, the status, and the first error once
there is one. Ctrl-C stops watching (the experiment runs on) after printing the results so far.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from rich.console import Console, RenderableType
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.text import Text

from morphml.cli import render
from morphml.client import Client, Experiment

FINAL = ("completed", "cancelled", "failed")
WORKERS_EVERY_SECONDS = 5.0


class _Progress(Progress):
    """A progress bar with a status line (and an error line) under it."""

    lines: tuple[str, ...] = ()

    def get_renderables(self) -> Iterable[RenderableType]:
        yield self.make_tasks_table(self.tasks)
        for line in self.lines:
            yield Text(line, no_wrap=True, overflow="ellipsis")


@dataclass
class Watcher:
    """What the status line shows besides the experiment: workers online, the first error."""

    client: Client
    experiment_id: int
    online: int | None = None
    offline: int = 0
    first_error: str | None = None
    _workers_at: float = field(default=-float("inf"))
    _failed_seen: int = 0

    def refresh(self, experiment: Experiment) -> None:
        now = time.monotonic()
        if now - self._workers_at >= WORKERS_EVERY_SECONDS:
            statuses = [w.status for w in self.client.workers()]
            self.online, self.offline = statuses.count("online"), statuses.count("offline")
            self._workers_at = now
        failed = experiment.counts.get("failed", 0)
        if self.first_error is None and (experiment.error or failed > self._failed_seen):
            self.first_error = first_error(self.client, experiment)
            self._failed_seen = failed

    def lines(self, experiment: Experiment) -> tuple[str, ...]:
        workers = "-" if self.online is None else str(self.online)
        status = (
            f"best {render.best_text(experiment)}  workers online {workers}"
            f"  running {experiment.counts.get('running', 0)}"
            f"  failed {experiment.counts.get('failed', 0)}  {experiment.status}"
        )
        if self.first_error:
            return status, f"first error: {render.one_line(self.first_error)}"
        return (status,)


def first_error(client: Client, experiment: Experiment) -> str | None:
    """The experiment's `error`, else the error of its first failed task, if any."""
    if experiment.error:
        return experiment.error
    if not experiment.counts.get("failed"):
        return None
    failed = sorted(client.tasks(experiment.id, state="failed"), key=lambda t: t.id)
    return next((task.error for task in failed if task.error), None)


def watch_experiment(
    client: Client, experiment_id: int, console: Console, poll_seconds: float = 1.0
) -> Experiment:
    """Poll until the experiment is final; returns its last state. On Ctrl-C the bar stops where
    it is and KeyboardInterrupt propagates (callers write the results so far)."""
    experiment = client.experiment(experiment_id)
    watcher = Watcher(client, experiment_id)
    columns = (
        TextColumn(f"[bold]experiment {experiment_id}"),
        BarColumn(bar_width=None),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with _Progress(*columns, console=console, transient=False, expand=True) as progress:
        bar = progress.add_task("", total=experiment.max_evaluations)
        while True:
            watcher.refresh(experiment)
            progress.lines = watcher.lines(experiment)
            progress.update(bar, completed=experiment.done)
            if experiment.status in FINAL:
                progress.refresh()
                break
            time.sleep(poll_seconds)
            experiment = client.experiment(experiment_id)
    console.print(summary(experiment), markup=False, highlight=False)
    return experiment


def summary(experiment: Experiment) -> str:
    """`experiment 3 completed: 28 completed, 2 failed; best 0.9761`."""
    return (
        f"experiment {experiment.id} {experiment.status}: {render.counts_text(experiment)}; "
        f"best {render.best_text(experiment)}"
    )
