"""Two server replicas on one Postgres database, four real workers (two on each replica), an
experiment of 200 tasks, and each replica kill -9'd once mid-run (the second after the first is
back): the budget completes, every task has exactly one result under one lease, no candidate is
evaluated twice, and the optimizer was told every outcome once across both replicas' refills.

Workers long-polling one replica are woken by tasks the other replica creates (LISTEN/NOTIFY);
bench/replicas.py measures that wake-up's latency.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from morphml.cli.processes import Processes, free_port, script, wait_ready
from morphml.client import Client
from tests.integration.test_chaos import TASKS, _rows, chaos_spec, check_optimizer_state
from tests.server.support import fresh_postgres_database, require_postgres

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

KILL_AT = {"a": 60, "b": 130}  # completed tasks at which each replica is kill -9'd, in order


@dataclass
class Replica:
    """One `morphml-server serve` on a fixed port, restartable there."""

    name: str
    database_url: str
    log_dir: Path
    port: int = field(default_factory=free_port)
    processes: Processes | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.processes = Processes(self.log_dir)
        argv = [script("morphml-server"), "serve", "--host", "127.0.0.1", "--port", str(self.port)]
        env = {"MORPHML_REAPER_INTERVAL_SECONDS": "1"}
        self.processes.start(self.name, [*argv, "--database-url", self.database_url], env)
        wait_ready(self.url, self.processes)

    def kill_and_restart(self) -> None:
        assert self.processes is not None
        ((_, process),) = self.processes.running
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        time.sleep(1.0)  # its workers meet a refused connection and back off
        self.start()

    def stop(self) -> None:
        if self.processes is not None:
            self.processes.stop_all(grace=5.0)


def start_workers(replicas: list[Replica], run_dir: Path) -> Processes:
    workers = Processes(run_dir / "logs")
    for index in range(4):
        replica = replicas[index % 2]
        name = f"replica-{replica.name}-worker-{index}"
        argv = [script("morphml-worker"), "--server", replica.url, "--name", name]
        argv += ["--gpus", "none", "--slots", "2", "--poll-seconds", "5"]
        workers.start(name, [*argv, "--work-dir", str(run_dir / name)])
    return workers


def run_with_replica_kills(replicas: list[Replica], experiment_id: int, deadline: float) -> None:
    """Poll whichever replica answers; kill -9 and restart each at its count of completions."""
    kills = [(replica, KILL_AT[replica.name]) for replica in replicas]
    counts: dict[str, int] = {}
    while time.time() < deadline:
        time.sleep(0.5)
        for replica in replicas:
            try:
                with Client(replica.url, timeout=5.0) as client:
                    experiment = client.experiment(experiment_id)
                break
            except Exception:  # this replica is down; ask the other one
                continue
        else:
            continue
        counts = experiment.counts
        if experiment.status == "completed":
            assert not kills, f"completed before every replica was killed: {counts}"
            return
        if kills and counts.get("completed", 0) >= kills[0][1]:
            kills.pop(0)[0].kill_and_restart()
    raise AssertionError(f"experiment did not complete; counts {counts}")


def test_two_replicas_lose_nothing_when_each_is_killed(tmp_path: Path) -> None:
    require_postgres()
    spec = {**chaos_spec(), "name": "replicas"}
    spec["evaluator"]["params"]["sleep_scale"] = 0.0001  # 0.1 to 0.25 s per evaluation
    with fresh_postgres_database() as database_url:
        replicas = [Replica(name, database_url, tmp_path / "logs") for name in ("a", "b")]
        workers: Processes | None = None
        try:
            for replica in replicas:
                replica.start()
            workers = start_workers(replicas, tmp_path)
            with Client(replicas[0].url) as client:
                experiment = client.create_experiment(spec)
            run_with_replica_kills(replicas, experiment.id, deadline=time.time() + 300)
        finally:
            if workers is not None:
                workers.stop_all(grace=5.0)
            for replica in replicas:
                replica.stop()
        check_one_result_per_task(database_url, experiment.id)
        check_optimizer_state(database_url, experiment.id)


def check_one_result_per_task(database_url: str, experiment_id: int) -> None:
    tasks = _rows(
        database_url,
        "SELECT id, state, metrics, candidate_key FROM task WHERE experiment_id = :e",
        e=experiment_id,
    )
    assert len(tasks) == TASKS
    assert all(state == "completed" and metrics for _, state, metrics, _ in tasks)
    assert len({key for *_, key in tasks}) == TASKS  # no candidate evaluated twice
    completions = _rows(
        database_url,
        "SELECT task_id, count(*) FROM task_event WHERE experiment_id = :e"
        " AND kind = 'completed' GROUP BY task_id",
        e=experiment_id,
    )
    assert dict(completions) == {task_id: 1 for task_id, *_ in tasks}
    # A lease that expired while its replica was down is claimed again (its late result still
    # counts once, above): reported, since on a loaded machine it may happen.
    reclaimed = _rows(
        database_url,
        "SELECT count(*) FROM (SELECT task_id FROM task_event WHERE experiment_id = :e"
        " AND kind = 'claimed' GROUP BY task_id HAVING count(*) > 1) AS twice",
        e=experiment_id,
    )[0][0]
    print(f"tasks claimed more than once: {reclaimed} of {TASKS}")
