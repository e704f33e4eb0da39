"""Wire objects and a fake client for the CLI's unit tests (no server)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from morphml import Space
from morphml.cli.local_search import demo_space
from morphml.wire import ExperimentPublic, TaskPublic, WorkerPublic

NOW = datetime(2024, 1, 1, tzinfo=UTC)


def experiment(
    status: str = "completed",
    counts: dict[str, int] | None = None,
    best: float | None = 0.97612,
    budget: int | None = 200,
    error: str | None = None,
    space: Space | None = None,
    experiment_id: int = 3,
) -> ExperimentPublic:
    counts = {"completed": 198, "failed": 2} if counts is None else counts
    architecture = (space or demo_space()).sample(0).to_dict()
    return ExperimentPublic(
        id=experiment_id,
        name="mnist-cnn",
        status=status,
        priority=0,
        parallelism=2,
        lease_seconds=30,
        max_attempts=2,
        budget={"max_evaluations": budget},
        spec={"objectives": [{"metric": "val_accuracy", "direction": "maximize"}]},
        tasks_created=sum(counts.values()),
        counts=counts,
        best=None
        if best is None
        else {
            "task_id": 1,
            "metrics": {"val_accuracy": best},
            "value": best,
            "candidate": {"architecture": architecture},
        },
        error=error,
        created_at=NOW,
        started_at=NOW,
        finished_at=None,
    )


def task(
    task_id: int,
    metrics: dict[str, float] | None,
    state: str = "completed",
    error: str | None = None,
    space: Space | None = None,
) -> TaskPublic:
    architecture = (space or demo_space()).sample(task_id)
    return TaskPublic(
        id=task_id,
        experiment_id=3,
        state=state,
        candidate={"architecture": architecture.to_dict(), "budget": None, "meta": {}},
        candidate_key=f"{architecture.hash}@None",
        budget=None,
        attempt=1,
        max_attempts=2,
        worker_id=1,
        progress=None,
        step=None,
        metrics=metrics,
        intermediate={},
        error=error,
        lease_expires_at=None,
        created_at=NOW,
        claimed_at=NOW,
        finished_at=NOW,
    )


def worker(worker_id: int, status: str = "online") -> WorkerPublic:
    return WorkerPublic(
        id=worker_id,
        name=f"w{worker_id}",
        host="h",
        resources={},
        labels={},
        status=status,
        created_at=NOW,
        last_seen_at=NOW,
        current_tasks=[],
    )


def mnist_metrics(value: float) -> dict[str, float]:
    return {"val_accuracy": value, "val_loss": 0.3, "train_seconds": 12.3456, "epochs": 2.0}


class FakeClient:
    """Answers `experiment()` from a script of states (the last one repeats); raises
    KeyboardInterrupt instead of answering once `interrupt_after` answers were given."""

    def __init__(
        self,
        states: list[ExperimentPublic],
        tasks: list[TaskPublic] | None = None,
        workers: list[WorkerPublic] | None = None,
        interrupt_after: int | None = None,
    ) -> None:
        self.states = list(states)
        self.task_list = tasks or []
        self.worker_list = workers if workers is not None else [worker(1), worker(2)]
        self.interrupt_after = interrupt_after
        self.answers = 0

    def __enter__(self) -> FakeClient:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def experiment(self, experiment_id: int) -> ExperimentPublic:
        if self.interrupt_after is not None and self.answers == self.interrupt_after:
            self.interrupt_after = None  # once: the caller then reads the state so far
            raise KeyboardInterrupt
        self.answers += 1
        return self.states.pop(0) if len(self.states) > 1 else self.states[0]

    def create_experiment(self, spec: dict[str, Any]) -> ExperimentPublic:
        return self.states[0]

    def workers(self) -> list[WorkerPublic]:
        return self.worker_list

    def tasks(self, experiment_id: int, state: str | None = None) -> list[TaskPublic]:
        return [t for t in self.task_list if state is None or t.state == state]
