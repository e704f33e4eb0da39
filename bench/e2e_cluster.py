"""Workers end to end: a real `morphml-server` and real `morphml-worker` agents run N evaluations.

The rate is read from the server's own task stamps (first claim -> last result), so process start,
registration and shutdown are left out; the worker agents' own overhead line (logged on SIGTERM,
issue 14) is parsed from their logs when present.
"""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from bench.cp_env import ServerProcess
from morphml import CellSpace
from morphml.cli.local_search import demo_space
from morphml.cli.processes import Processes, script
from morphml.client import Client

OVERHEAD = re.compile(r"task overhead: n=(\d+) p50=([\d.]+)ms p99=([\d.]+)ms")
COLD_FLAG = "--max-tasks-per-process"


@dataclass(frozen=True)
class Setup:
    """`workers` agents with `slots` slots each; `extra` worker flags (e.g. a cold process)."""

    workers: int
    slots: int
    extra: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return f"{self.workers}x{self.slots}"

    @classmethod
    def parse(cls, text: str) -> Setup:
        workers, slots = text.lower().split("x")
        return cls(int(workers), int(slots))


@dataclass(frozen=True)
class Overhead:
    """The agents' per-task overhead: tasks counted, and the worst agent's p50 and p99 (ms)."""

    tasks: int
    p50_ms: float
    p99_ms: float

    def text(self) -> str:
        return f"{self.p50_ms:.1f} / {self.p99_ms:.1f} ms (n={self.tasks})"


@dataclass(frozen=True)
class RunResult:
    evaluations: int
    seconds: float
    overhead: Overhead | None

    @property
    def rate(self) -> float:
        return self.evaluations / self.seconds if self.seconds > 0 else float("nan")


@lru_cache(maxsize=8)
def worker_help(pythonpath: str | None) -> str:
    command = [script("morphml-worker"), "--help"]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env |= {"PYTHONPATH": pythonpath} if pythonpath else {}
    return subprocess.run(command, capture_output=True, text=True, check=True, env=env).stdout


def has_cold_flag() -> bool:
    """Whether the agent (of the tree on PYTHONPATH now) can be told to start a fresh process
    per task: the warm agent of issue 14 can; the agent before it always does."""
    return COLD_FLAG in worker_help(os.environ.get("PYTHONPATH"))


def tabular_spec(evaluations: int, parallelism: int) -> dict[str, Any]:
    """NAS-Bench-201 lookups that take no time: what is left is the path a task takes."""
    return {
        "name": "workers-e2e-tabular",
        "search_space": CellSpace().to_dict(),
        "optimizer": {"name": "random", "params": {}},
        "objectives": [{"metric": "val_accuracy", "direction": "maximize"}],
        "evaluator": {"kind": "tabular", "params": {"dataset": "cifar10", "sleep_scale": 0.0}},
        "budget": {"max_evaluations": evaluations},
        "parallelism": parallelism,
        "lease_seconds": 60,
        "max_attempts": 2,
        "seed": 0,
    }


def train_spec(evaluations: int, parallelism: int) -> dict[str, Any]:
    """The `train` evaluator on MNIST: one epoch on 2,000 images (the demo's space)."""
    params = {"dataset": "mnist", "epochs": 1, "train_size": 2000, "val_size": 500, "lr": 0.002}
    return {
        "name": "workers-e2e-train",
        "search_space": demo_space().to_dict(),
        "optimizer": {"name": "random", "params": {}},
        "objectives": [{"metric": "val_accuracy", "direction": "maximize"}],
        "evaluator": {"kind": "train", "params": params},
        "budget": {"max_evaluations": evaluations},
        "parallelism": parallelism,
        "lease_seconds": 120,
        "max_attempts": 2,
        "seed": 0,
    }


def start_workers(processes: Processes, url: str, setup: Setup, run_dir: Path) -> None:
    for index in range(setup.workers):
        name = f"e2e-worker-{index}"
        argv = [script("morphml-worker"), "--server", url, "--name", name, "--gpus", "none"]
        argv += ["--slots", str(setup.slots), "--work-dir", str(run_dir / name)]
        argv += ["--poll-seconds", "5", *setup.extra]
        processes.start(name, argv)  # the agent splits the cores between its slots itself


def wait_registered(client: Client, processes: Processes, count: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while len(client.workers()) < count:
        processes.check_alive()
        if time.monotonic() > deadline:
            raise RuntimeError(f"{count} workers did not register within {timeout:.0f} s")
        time.sleep(0.2)


def wait_completed(
    client: Client, experiment_id: int, processes: Processes, timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    while (experiment := client.experiment(experiment_id)).status != "completed":
        processes.check_alive()
        if experiment.status in ("failed", "cancelled") or time.monotonic() > deadline:
            raise RuntimeError(f"experiment {experiment.status}; counts {experiment.counts}")
        time.sleep(0.25)


def measured_span(client: Client, experiment_id: int) -> tuple[int, float]:
    """(completed tasks, seconds from the first claim to the last result), by the server's clock."""
    tasks = [t for t in client.tasks(experiment_id) if t.state == "completed"]
    claims = [t.claimed_at for t in tasks if t.claimed_at is not None]
    results = [t.finished_at for t in tasks if t.finished_at is not None]
    if not claims or not results:
        raise RuntimeError("no completed task carries its claim and result times")
    return len(tasks), (max(results) - min(claims)).total_seconds()


def parse_overhead(logs: list[Path]) -> Overhead | None:
    """The agents' overhead lines; None until the agent logs one (before issue 14 lands)."""
    found = [m for log in logs if log.exists() for m in OVERHEAD.finditer(log.read_text())]
    if not found:
        return None
    return Overhead(
        tasks=sum(int(m[1]) for m in found),
        p50_ms=max(float(m[2]) for m in found),
        p99_ms=max(float(m[3]) for m in found),
    )


def run_experiment(
    server: ServerProcess, setup: Setup, spec: dict[str, Any], run_dir: Path, timeout: float
) -> RunResult:
    """Start the agents, run `spec` to completion, SIGTERM the agents; the measured rate."""
    processes = Processes(run_dir / "logs")
    logs = [run_dir / "logs" / f"e2e-worker-{i}.log" for i in range(setup.workers)]
    try:
        start_workers(processes, server.url, setup, run_dir)
        with Client(server.url, timeout=30.0) as client:
            wait_registered(client, processes, setup.workers, timeout=120)
            experiment_id = client.create_experiment(spec).id
            wait_completed(client, experiment_id, processes, timeout)
            evaluations, seconds = measured_span(client, experiment_id)
    except Exception as exc:
        # The scratch directory goes with the run: say what the agents said while it exists.
        raise RuntimeError(f"{exc}\n{log_tails(logs)}") from exc
    finally:
        processes.stop_all(grace=30.0)
    return RunResult(evaluations, seconds, parse_overhead(logs))


def log_tails(logs: list[Path], lines: int = 15) -> str:
    tails = [
        f"--- {log.name}\n" + "\n".join(log.read_text().splitlines()[-lines:])
        for log in logs
        if log.exists()
    ]
    return "\n".join(tails)


def median_or_nan(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")
