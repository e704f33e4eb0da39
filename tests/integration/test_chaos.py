"""Fault tolerance end to end: 200 tasks through a real server and real workers under chaos.

A chaos loop kill -9s random workers (starting replacements) and kill -9s and restarts the
server twice. At the end the budget is met, every task has exactly one result, no task was
completed under two leases, every orphaned lease was reassigned within lease time + reaper
period, and the optimizer state that carried across the restarts was told every outcome.
"""

from __future__ import annotations

import os
import random
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from morphml import CellSpace
from morphml.cli.processes import Processes, free_port, script, wait_ready
from morphml.client import Client
from tests.server.support import fresh_postgres_database, require_postgres

pytestmark = pytest.mark.slow

TASKS = 200
WORKERS = 4
LEASE_SECONDS = 4.0
REAPER_SECONDS = 1.0
SLACK_SECONDS = 5.0  # process scheduling on a loaded 2-core machine
SERVER_RESTART_AT = (60, 130)  # completed tasks at which the server is killed


def chaos_spec() -> dict[str, Any]:
    return {
        "name": "chaos",
        "search_space": CellSpace().to_dict(),
        "optimizer": {"name": "regularized_evolution", "params": {}},
        "objectives": [{"metric": "val_accuracy", "direction": "maximize"}],
        # Real published NAS-Bench-201 lookups, sleeping 0.02% of the recorded training time
        # (about 0.2 to 0.5 s) so that kills land mid-evaluation.
        "evaluator": {"kind": "tabular", "params": {"dataset": "cifar10", "sleep_scale": 0.0002}},
        "budget": {"max_evaluations": TASKS},
        "parallelism": 8,
        "lease_seconds": LEASE_SECONDS,
        "max_attempts": 20,
        "seed": 3,
    }


@dataclass
class Cluster:
    """A server and workers that the chaos loop may kill; it remembers when it killed what."""

    run_dir: Path
    database_url: str
    port: int = field(default_factory=free_port)
    processes: Processes | None = None
    server: Processes | None = None
    worker_count: int = 0
    worker_kills: list[tuple[str, float]] = field(default_factory=list)
    server_down: list[tuple[float, float]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start_server(self) -> None:
        self.server = Processes(self.run_dir / "logs")
        argv = [script("morphml-server"), "serve", "--host", "127.0.0.1", "--port", str(self.port)]
        env = {"MORPHML_REAPER_INTERVAL_SECONDS": str(REAPER_SECONDS)}
        self.server.start("server", [*argv, "--database-url", self.database_url], env)
        wait_ready(self.url, self.server)

    def kill_server(self) -> None:
        assert self.server is not None
        ((_, process),) = self.server.running
        started = time.time()
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        time.sleep(1.0)
        self.start_server()
        self.server_down.append((started, time.time()))

    def start_worker(self) -> None:
        if self.processes is None:
            self.processes = Processes(self.run_dir / "logs")
        name = f"chaos-worker-{self.worker_count}"
        self.worker_count += 1
        argv = [script("morphml-worker"), "--server", self.url, "--name", name, "--gpus", "none"]
        argv += ["--slots", "2", "--work-dir", str(self.run_dir / name), "--poll-seconds", "5"]
        self.processes.start(name, argv)

    def kill_random_worker(self, rng: random.Random) -> None:
        assert self.processes is not None
        name, process = self.processes.running.pop(rng.randrange(len(self.processes.running)))
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        self.worker_kills.append((name, time.time()))
        self.start_worker()

    def stop(self) -> None:
        for group in (self.processes, self.server):
            if group is not None:
                group.stop_all(grace=5.0)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'chaos.db'}"
        return
    require_postgres()
    with fresh_postgres_database() as url:
        yield url


def run_chaos(cluster: Cluster, experiment_id: int, deadline: float) -> None:
    rng = random.Random(0)
    restarts = list(SERVER_RESTART_AT)
    with Client(cluster.url, timeout=5.0) as client:
        _chaos_loop(cluster, client, experiment_id, deadline, rng, restarts)


def _chaos_loop(
    cluster: Cluster,
    client: Client,
    experiment_id: int,
    deadline: float,
    rng: random.Random,
    restarts: list[int],
) -> None:
    experiment = client.experiment(experiment_id)
    while time.time() < deadline:
        time.sleep(1.5)
        try:
            experiment = client.experiment(experiment_id)
        except Exception:  # the server is between restarts; the loop just waits for it
            continue
        if experiment.status == "completed":
            return
        if restarts and experiment.counts.get("completed", 0) >= restarts[0]:
            restarts.pop(0)
            cluster.kill_server()
        else:
            cluster.kill_random_worker(rng)
    raise AssertionError(f"experiment did not complete; counts {experiment.counts}")


def test_chaos(database_url: str, tmp_path: Path) -> None:
    cluster = Cluster(tmp_path, database_url)
    try:
        cluster.start_server()
        for _ in range(WORKERS):
            cluster.start_worker()
        with Client(cluster.url) as client:
            experiment = client.create_experiment(chaos_spec())
        run_chaos(cluster, experiment.id, deadline=time.time() + 420)
        with Client(cluster.url) as client:
            workers = {w.name: w.id for w in client.workers()}
    finally:
        cluster.stop()
    assert len(cluster.server_down) == 2, "the server was not restarted twice"
    assert len(cluster.worker_kills) >= 5
    check_history(database_url, experiment.id, cluster, workers)


def _rows(database_url: str, query: str, **params: Any) -> list[Any]:
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as connection:
            return list(connection.execute(sa.text(query), params))
    finally:
        engine.dispose()


def check_history(
    database_url: str, experiment_id: int, cluster: Cluster, workers: dict[str, int]
) -> None:
    tasks = _rows(
        database_url,
        "SELECT id, state, metrics FROM task WHERE experiment_id = :e",
        e=experiment_id,
    )
    assert len(tasks) == TASKS
    assert all(state == "completed" and metrics for _, state, metrics in tasks)
    events = _rows(
        database_url,
        "SELECT task_id, kind, worker_id, created_at, id FROM task_event"
        " WHERE experiment_id = :e ORDER BY id",
        e=experiment_id,
    )
    completions: dict[int, int] = {}
    for task_id, kind, *_ in events:
        if kind == "completed":
            completions[task_id] = completions.get(task_id, 0) + 1
    assert completions == {task_id: 1 for task_id, _, _ in tasks}  # one result, one lease each
    check_reassignments(events, cluster, workers)
    check_optimizer_state(database_url, experiment_id)


def _utc(stamp: Any) -> float:
    if isinstance(stamp, str):
        stamp = datetime.fromisoformat(stamp)
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    return float(stamp.timestamp())


def check_reassignments(events: list[Any], cluster: Cluster, workers: dict[str, int]) -> None:
    """Each task a killed worker held expired within lease + reaper period of the kill (unless
    the server was down meanwhile) and ran elsewhere afterwards; report the delays."""
    delays, bound = [], LEASE_SECONDS + REAPER_SECONDS + SLACK_SECONDS
    for name, killed_at in cluster.worker_kills:
        worker_id = workers.get(name)
        expired = [e for e in events if e[1] == "lease_expired" and e[2] == worker_id]
        for task_id, _, _, at, event_id in expired:
            if any(start - bound < killed_at < end for start, end in cluster.server_down):
                continue  # the reaper could not run while the server was down
            assert _utc(at) - killed_at <= bound, f"task {task_id} expired late"
            # Event ids, not times, give the order: Postgres stamps a row with its
            # transaction's start, which can precede the reaper's commit.
            after = [
                e
                for e in events
                if e[0] == task_id and e[1] in ("claimed", "completed") and e[4] > event_id
            ]
            assert after, f"task {task_id} was never claimed again"
            if after[0][1] == "completed":
                # The lease's own late result counted before anyone claimed the task again: its
                # worker posted it while the server was down or slow, and the server took it
                # once the lease had expired (never over a newer lease; one completion per task
                # is checked above).
                continue
            delays.append(_utc(after[0][3]) - killed_at)
    assert delays, "no orphaned lease was observed"
    mean = sum(delays) / len(delays)
    print(f"death -> running elsewhere: n={len(delays)} max {max(delays):.1f} s mean {mean:.1f} s")


def check_optimizer_state(database_url: str, experiment_id: int) -> None:
    """The optimizer that finished carried its state across both restarts: it was told every
    outcome exactly once (its `told` count), and its population (all that evolution keeps,
    however long the run) is made of this experiment's results. tests/server/test_process.py
    proves that a restart resumes the state exactly."""
    import json

    (state,) = _rows(
        database_url, "SELECT optimizer_state FROM experiment WHERE id = :e", e=experiment_id
    )[0]
    state = json.loads(state) if isinstance(state, str) else state
    untold = _rows(
        database_url,
        "SELECT count(*) FROM task WHERE experiment_id = :e AND tell_pending",
        e=experiment_id,
    )[0][0]
    assert untold == 0 and not state["pending"]
    assert state["told"] == TASKS  # every result told once, across both restarts
    completed = _rows(
        database_url,
        "SELECT candidate_key FROM task WHERE experiment_id = :e AND state = 'completed'",
        e=experiment_id,
    )
    population = {record["hash"] for record in state["population"]}
    assert len(population) == 20  # regularized evolution's default population_size
    assert population <= {key.split("@")[0] for (key,) in completed}
