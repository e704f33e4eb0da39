"""What a heartbeat costs in the store, plain against carrying metrics (what `train` sends each
epoch), in process (no HTTP), on SQLite and Postgres.

    .venv/bin/python bench/heartbeat_paths.py --rounds 30
    # an older server: a tree holding its `server/` first on the path
    git archive REV server | tar -x -C /tmp/old && \\
        PYTHONPATH=/tmp/old:. .venv/bin/python bench/heartbeat_paths.py

Three kinds of heartbeat, interleaved round by round (the order rotates): `plain` (lease only),
`metrics` (an epoch's metrics, experiment without a pruner) and `metrics+median` (the same in an
experiment with a median pruner that never stops anything, so every beat pays the pruner's
reads). Each round beats each of `--tasks` leased tasks once per kind; reported per heartbeat:
wall time p50/p99 and the process's CPU time, with the load average.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.append(str(Path(__file__).resolve().parents[1]))  # `bench`, `morphml`

from bench.cp_env import fresh_postgres, scratch_dir, sqlalchemy_url
from bench.cp_workers import experiment_spec
from server.db import make_engine
from server.experiments import create_experiment
from server.migrations import upgrade_to_head
from server.schemas import ExperimentCreate, WorkerCreate
from server.store import tasks as store
from server.workers import register_worker

NEVER_PRUNES = {"name": "median", "params": {"warmup_steps": 0, "min_tasks": 1_000_000}}
KINDS = ("plain", "metrics", "metrics+median")


@contextmanager
def database(kind: str) -> Iterator[str]:
    if kind == "sqlite":
        with scratch_dir() as scratch:
            yield f"sqlite:///{scratch / 'hb.db'}"
    else:
        with fresh_postgres("hb") as url:
            yield sqlalchemy_url(url)


def leases(engine: Any, pruner: dict[str, Any] | None, count: int) -> list[tuple[int, str]]:
    body = experiment_spec(parallelism=count, pruner=pruner)
    create_experiment(engine, spec=ExperimentCreate.model_validate(body))
    registration = {"name": "hb", "host": "bench", "resources": {"cpus": 2}}
    worker = register_worker(engine, body=WorkerCreate.model_validate(registration)).id
    found = store.claim(
        engine, worker_id=worker, free_gpus=0, free_gpu_memory_mb=0, labels={}, max_tasks=count
    )
    assert not isinstance(found, store.Miss)
    if isinstance(found, store.Claim):  # an older server: one task per claim
        found = [found]
        while len(found) < count:
            more = store.claim(
                engine, worker_id=worker, free_gpus=0, free_gpu_memory_mb=0, labels={}
            )
            assert isinstance(more, store.Claim)
            found.append(more)
    return [(c.task.id, c.task.lease_token) for c in found]


def run(kind: str, rounds: int, tasks: int) -> dict[str, list[tuple[float, float]]]:
    with database(kind) as url:
        engine = make_engine(url)
        upgrade_to_head(engine)
        plain = leases(engine, None, tasks)
        reporting = leases(engine, None, tasks)
        pruned = leases(engine, NEVER_PRUNES, tasks)
        targets = {"plain": plain, "metrics": reporting, "metrics+median": pruned}
        samples: dict[str, list[tuple[float, float]]] = {k: [] for k in KINDS}
        for step in range(rounds):
            order = KINDS[step % 3 :] + KINDS[: step % 3]
            for name in order:
                metrics = None if name == "plain" else {"val_accuracy": 0.5 + step / 1000}
                for task_id, token in targets[name]:
                    wall, cpu = time.perf_counter(), time.process_time()
                    store.heartbeat(
                        engine,
                        task_id=task_id,
                        lease_token=token,
                        progress=0.5,
                        step=step if metrics else None,
                        metrics=metrics,
                    )
                    samples[name].append((time.perf_counter() - wall, time.process_time() - cpu))
        engine.dispose()
    return samples


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--tasks", type=int, default=16)
    parser.add_argument("--db", nargs="+", default=["sqlite", "postgres"])
    args = parser.parse_args(argv)
    print(f"server: {Path(store.__file__).parents[2]}")
    print("| db | heartbeat | wall p50 ms | wall p99 ms | CPU ms | vs plain (p50) | load |")
    print("|---|---|---|---|---|---|---|")
    for kind in args.db:
        samples = run(kind, args.rounds, args.tasks)
        load = f"{os.getloadavg()[0]:.2f}"
        base = percentile([w for w, _ in samples["plain"]], 50)
        for name, timings in samples.items():
            walls = [1000 * w for w, _ in timings]
            cpu = statistics.fmean(1000 * c for _, c in timings)
            ratio = percentile(walls, 50) / (1000 * base)
            print(
                f"| {kind} | {name} | {percentile(walls, 50):.2f} | {percentile(walls, 99):.2f} "
                f"| {cpu:.2f} | {ratio:.2f}x | {load} |"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
