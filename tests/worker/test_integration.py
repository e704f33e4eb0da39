"""A real `morphml-server` with real `morphml-worker` processes: training, kill -9, SIGTERM, crash.

One server per module (each test creates its own experiments and starts its own workers, and stops
them); leases are short and the reaper fast so that lost workers are noticed within seconds.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import pytest

from morphml import Layer, SearchSpace
from morphml.cli.processes import Processes, free_port, script, wait_ready
from morphml.client import Client, Experiment, Task
from tests.server.support import fresh_postgres_database, require_postgres

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
FINAL = ("completed", "cancelled", "failed")


@dataclass
class Cluster:
    """The module's server plus the workers one test starts (stopped when the test ends)."""

    url: str
    admin: Client
    worker_token: str
    base: Path
    workers: Processes | None = None
    started: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start_worker(self, name: str, *extra: str) -> subprocess.Popen[bytes]:
        assert self.workers is not None
        argv = [script("morphml-worker"), "--server", self.url, "--name", name, "--gpus", "none"]
        argv += ["--work-dir", str(self.workers.log_dir / name), "--poll-seconds", "1"]
        argv += ["--allow", "tests.worker", *extra]
        env = {"MORPHML_WORKER_TOKEN": self.worker_token, "PYTHONPATH": str(ROOT)}
        env["MORPHML_TORCH_THREADS"] = "1"  # two agents share this machine's cores
        self.workers.start(name, argv, env)
        self.started[name] = self.workers.running[-1][1]
        return self.started[name]

    def experiment(self, evaluator: dict[str, Any], **overrides: Any) -> int:
        spec = {
            "name": "integration",
            "search_space": digits_space().to_dict(),
            "optimizer": {"name": "random", "params": {}},
            "objectives": [{"metric": "val_accuracy", "direction": "maximize"}],
            "evaluator": evaluator,
            "budget": {"max_evaluations": 2},
            "parallelism": 2,
            "lease_seconds": 30,
            "max_attempts": 3,
            "seed": 0,
            **overrides,
        }
        return self.admin.create_experiment(spec).id

    def wait(self, condition: Callable[[], Any], timeout: float = 60.0) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = condition()
            if value:
                return value
            time.sleep(0.2)
        raise AssertionError(f"timed out; worker logs in {self.workers and self.workers.log_dir}")

    def finished(self, experiment_id: int, timeout: float = 60.0) -> Experiment:
        return self.wait(lambda: self._final(experiment_id), timeout)

    def _final(self, experiment_id: int) -> Experiment | None:
        experiment = self.admin.experiment(experiment_id)
        return experiment if experiment.status in FINAL else None

    def running_task(self, experiment_id: int) -> Task | None:
        running = self.admin.tasks(experiment_id, state="running")
        return running[0] if running else None


def digits_space() -> SearchSpace:
    return SearchSpace("digits").add_layers(
        Layer.input(shape=(1, 8, 8)),
        Layer.conv2d(filters=[8, 16], kernel_size=3),
        Layer.relu(),
        Layer.maxpool(pool_size=2),
        Layer.flatten(),
        Layer.dense(units=[32, 64]),
        Layer.relu(),
        Layer.output(units=10),
    )


def python_evaluator(function: str, **params: Any) -> dict[str, Any]:
    return {
        "kind": "python",
        "params": {"function": f"tests.worker.user_functions:{function}", **params},
    }


ServerInfo = tuple[str, str, str, Path]
# The lease paths (expiry, reaper, requeue on fail) differ by database: run those tests on both.
BOTH_DATABASES = pytest.mark.parametrize(
    "cluster", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)


def start_server(base: Path, database_url: str) -> Iterator[ServerInfo]:
    admin_token, worker_token = secrets.token_hex(16), secrets.token_hex(16)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    processes = Processes(base / "server")
    env = {
        "MORPHML_ADMIN_TOKEN": admin_token,
        "MORPHML_WORKER_TOKEN": worker_token,
        "MORPHML_REAPER_INTERVAL_SECONDS": "0.3",
        "MORPHML_CLAIM_REPOLL_SECONDS": "0.5",
    }
    argv = [script("morphml-server"), "serve", "--port", str(port), "--log-level", "warning"]
    processes.start("server", [*argv, "--database-url", database_url], env)
    try:
        wait_ready(url, processes)
        yield url, admin_token, worker_token, base
    finally:
        processes.stop_all()


@pytest.fixture(scope="module")
def sqlite_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerInfo]:
    base = tmp_path_factory.mktemp("sqlite-cluster")
    yield from start_server(base, f"sqlite:///{base / 'morphml.db'}")


@pytest.fixture(scope="module")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerInfo]:
    require_postgres()
    with fresh_postgres_database() as url:
        yield from start_server(tmp_path_factory.mktemp("postgres-cluster"), url)


@pytest.fixture
def cluster(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Cluster]:
    """Workers of one test on the module's server (SQLite unless parametrized otherwise)."""
    database = getattr(request, "param", "sqlite")
    url, admin_token, worker_token, base = request.getfixturevalue(f"{database}_server")
    with Client(url, admin_token) as admin:
        cluster = Cluster(url, admin, worker_token, base, Processes(tmp_path / "workers"))
        try:
            yield cluster
        finally:
            assert cluster.workers is not None
            cluster.workers.stop_all()


@BOTH_DATABASES
def test_two_workers_train_digits_to_sensible_accuracies(cluster: Cluster) -> None:
    cluster.start_worker("a")
    cluster.start_worker("b")
    # Both polling before the tasks exist: a worker that finishes first claims the next task
    # in its completion, so one still starting up could find nothing left.
    names = {"a", "b"}
    cluster.wait(lambda: names <= {w.name for w in cluster.admin.workers() if w.status == "online"})
    evaluator = {"kind": "train", "params": {"dataset": "digits", "epochs": 3, "lr": 0.01}}
    experiment = cluster.finished(cluster.experiment(evaluator, budget={"max_evaluations": 2}))
    assert experiment.status == "completed", experiment.error
    tasks = cluster.admin.tasks(experiment.id)
    assert [t.state for t in tasks] == ["completed"] * 2
    accuracies = [t.metrics["val_accuracy"] for t in tasks if t.metrics]
    assert len(accuracies) == 2 and min(accuracies) > 0.9
    assert all(t.intermediate for t in tasks)  # per-epoch reports reached the server
    assert len({t.worker_id for t in tasks}) == 2


@BOTH_DATABASES
def test_a_killed_worker_loses_its_lease_and_the_task_is_done_once_elsewhere(
    cluster: Cluster,
) -> None:
    workers = {"a": cluster.start_worker("a"), "b": cluster.start_worker("b")}
    evaluator = python_evaluator("good", sleep=2)
    experiment_id = cluster.experiment(evaluator, budget={"max_evaluations": 3}, lease_seconds=2)
    victim_task = cluster.wait(lambda: cluster.running_task(experiment_id))
    by_id = {w.id: w.name for w in cluster.admin.workers()}
    victim = workers[by_id[victim_task.worker_id]]
    children = psutil.Process(victim.pid).children(recursive=True)
    os.kill(victim.pid, signal.SIGKILL)
    # Its evaluation does not live on as an orphan (it runs in its own session).
    cluster.wait(lambda: not any(child.is_running() for child in children), timeout=10)
    experiment = cluster.finished(experiment_id)
    tasks = cluster.admin.tasks(experiment_id)
    assert experiment.status == "completed" and [t.state for t in tasks] == ["completed"] * 3
    redone = next(t for t in tasks if t.id == victim_task.id)
    assert redone.attempt == 2 and redone.metrics and redone.metrics["val_accuracy"] == 0.75


@BOTH_DATABASES
def test_sigterm_exits_cleanly_and_hands_the_task_back_at_once(cluster: Cluster) -> None:
    worker = cluster.start_worker("a", "--grace-seconds", "0.5")
    experiment_id = cluster.experiment(
        python_evaluator("good", sleep=60), budget={"max_evaluations": 1}, parallelism=1,
        lease_seconds=300,
    )  # fmt: skip
    task = cluster.wait(lambda: cluster.running_task(experiment_id))
    os.kill(worker.pid, signal.SIGTERM)
    assert worker.wait(timeout=20) == 0
    (after,) = cluster.admin.tasks(experiment_id)
    # Back in the queue long before the 300 s lease would have expired.
    assert after.id == task.id and after.state == "pending" and after.attempt == 2
    cluster.admin.cancel(experiment_id)


@BOTH_DATABASES
def test_a_second_sigterm_exits_at_once_and_kills_the_child(cluster: Cluster) -> None:
    worker = cluster.start_worker("a", "--grace-seconds", "120")
    experiment_id = cluster.experiment(
        python_evaluator("good", sleep=60), budget={"max_evaluations": 1}, lease_seconds=300
    )
    cluster.wait(lambda: cluster.running_task(experiment_id))
    children = cluster.wait(lambda: psutil.Process(worker.pid).children(recursive=True))
    os.kill(worker.pid, signal.SIGTERM)
    time.sleep(0.5)
    assert worker.poll() is None  # still in its 120 s grace
    os.kill(worker.pid, signal.SIGTERM)
    assert worker.wait(timeout=10) == 1
    cluster.wait(lambda: not any(child.is_running() for child in children), timeout=10)
    cluster.admin.cancel(experiment_id)


@BOTH_DATABASES
def test_crashes_and_cancellations_end_tasks_while_the_worker_serves_on(cluster: Cluster) -> None:
    worker = cluster.start_worker("a")
    crashes = [
        cluster.experiment(python_evaluator(name), budget={"max_evaluations": 1}, max_attempts=2)
        for name in ("exits", "raises")
    ]
    for experiment_id in crashes:
        cluster.finished(experiment_id)
        (task,) = cluster.admin.tasks(experiment_id)
        assert task.state == "failed" and task.attempt == 2
        assert task.error and ("exited with code 3" in task.error or "boom" in task.error)
    cancelled = cluster.experiment(
        python_evaluator("good", sleep=60), budget={"max_evaluations": 1}, lease_seconds=3
    )
    cluster.wait(lambda: cluster.running_task(cancelled))
    children = cluster.wait(lambda: psutil.Process(worker.pid).children(recursive=True))
    cluster.admin.cancel(cancelled)
    # The next heartbeat (every second) answers "stop": the child goes, the worker stays.
    cluster.wait(lambda: not any(child.is_running() for child in children), timeout=15)
    assert [t.state for t in cluster.admin.tasks(cancelled)] == ["cancelled"]
    healthy = cluster.finished(cluster.experiment(python_evaluator("good")))
    assert healthy.status == "completed" and worker.poll() is None
