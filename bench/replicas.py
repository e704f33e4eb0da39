"""Several server replicas on one Postgres: control-plane throughput with 1, 2 and 3 replicas
(simulated workers spread over them, zero-time evaluations), and the time from a task's creation
on replica A to its claim by a worker long-polling replica B (the wake-up rides LISTEN/NOTIFY),
beside the same figure when creator and claimer share a replica.

    .venv/bin/python -m bench.replicas [--rounds 40] [--workers 16] [--seconds 10]

Both ends are read from the database clock (the task's created_at and claimed_at), so no two
clocks are compared; the client-side figure (POST sent -> claim answered) is an upper bound.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import threading
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import psycopg

from bench.cp_env import ServerProcess, fresh_postgres, machine_note, running_server, scratch_dir
from bench.cp_workers import (
    CycleStats,
    Window,
    _cycle_loop,
    create_experiment,
    experiment_spec,
    make_client,
    percentile,
    register_workers,
)
from morphml import Layer, SearchSpace


def one_task_spec(round_index: int) -> dict[str, Any]:
    space = SearchSpace("tiny").add_layers(
        Layer.input(shape=(1, 8, 8)),
        Layer.conv2d(filters=[4, 8], kernel_size=[1, 3]),
        Layer.flatten(),
        Layer.output(units=10),
    )
    return {
        "name": f"wakeup-{round_index}",
        "search_space": space.to_dict(),
        "optimizer": {"name": "random", "params": {}},
        "objectives": [{"metric": "val_accuracy", "direction": "maximize"}],
        "evaluator": {"kind": "proxy", "params": {}},
        "budget": {"max_evaluations": 1},
        "parallelism": 1,
        "lease_seconds": 300,
    }


def _claim(url: str, worker_id: int, answer: dict[str, Any]) -> None:
    with httpx.Client(base_url=url, timeout=60) as http:
        response = http.post("/v1/tasks/claim", json={"worker_id": worker_id, "wait_seconds": 30})
    answer["at"] = time.perf_counter()
    answer["task_id"] = response.json()["id"] if response.status_code == 200 else None


def one_round(create: str, claim: str, worker_id: int, index: int, dsn: str) -> tuple[float, float]:
    """(database ms, client ms) for one task created on `create`, claimed through `claim`."""
    answer: dict[str, Any] = {}
    waiting = threading.Thread(target=_claim, args=(claim, worker_id, answer))
    waiting.start()
    time.sleep(0.3)  # the claim is parked in its long-poll
    sent = time.perf_counter()
    httpx.post(f"{create}/v1/experiments", json=one_task_spec(index), timeout=30).raise_for_status()
    waiting.join(timeout=40)
    assert answer.get("task_id"), f"round {index}: the claim got no task"
    with psycopg.connect(dsn) as connection:
        row = connection.execute(
            "SELECT extract(epoch FROM claimed_at - created_at) FROM task WHERE id = %s",
            (answer["task_id"],),
        ).fetchone()
    assert row is not None
    return float(row[0]) * 1000, (answer["at"] - sent) * 1000


def summary(label: str, figures: list[float]) -> str:
    ordered = sorted(figures)
    p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]
    return (
        f"{label}: median {statistics.median(ordered):.1f} ms, p95 {p95:.1f} ms, "
        f"max {ordered[-1]:.1f} ms (n={len(ordered)})"
    )


async def cycles_over(urls: list[str], workers: int, seconds: float) -> CycleStats:
    """`workers` simulated workers, spread round-robin over the replicas, cycling (claim,
    heartbeat, complete) for 3 s of warm-up plus `seconds`."""
    async with make_client(urls[0], 4) as client:
        spec = experiment_spec(parallelism=max(2 * workers, workers + 8), pruner=None)
        await create_experiment(client, spec)
        ids = await register_workers(client, workers)
    now = time.perf_counter()
    window = Window(start=now + 3.0, end=now + 3.0 + seconds)
    stats = CycleStats()
    loops = [
        asyncio.create_task(_cycle_loop(urls[i % len(urls)], worker_id, window, stats, 0.0, False))
        for i, worker_id in enumerate(ids)
    ]
    await asyncio.gather(*loops)
    return stats


def throughput(replicas: int, workers: int, seconds: float, scratch: Path) -> str:
    with fresh_postgres(f"r{replicas}") as dsn, ExitStack() as stack:
        servers: list[ServerProcess] = [
            stack.enter_context(running_server(dsn, scratch / f"t{replicas}-{i}.log"))
            for i in range(replicas)
        ]
        note = machine_note(scratch).text()
        stats = asyncio.run(cycles_over([s.url for s in servers], workers, seconds))
    claim = stats.latency_ms["claim"]
    return (
        f"| {replicas} | {workers} | {stats.cycles / seconds:.0f} | "
        f"{percentile(claim, 50):.1f} | {percentile(claim, 99):.1f} | {note} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    rounds = args.rounds
    with scratch_dir() as scratch:
        print("| replicas | workers | task cycles/s | claim p50 ms | claim p99 ms | machine |")
        print("|---|---|---|---|---|---|")
        for replicas in (1, 2, 3):
            print(throughput(replicas, args.workers, args.seconds, scratch), flush=True)
    with scratch_dir() as scratch, fresh_postgres("replicas") as dsn:
        print(machine_note(scratch).text())
        with (
            running_server(dsn, scratch / "a.log") as a,
            running_server(dsn, scratch / "b.log") as b,
        ):
            body = {"name": "bench", "host": "bench", "resources": {"cpus": 1}}
            worker_id = httpx.post(f"{b.url}/v1/workers", json=body, timeout=10).json()["id"]
            cases = {"A creates, B's long-poll claims": (a.url, b.url)}
            cases["A creates, A's long-poll claims"] = (a.url, a.url)
            index = 0
            for label, (create, claim) in cases.items():
                database, client = [], []
                for _ in range(rounds):
                    index += 1
                    db_ms, client_ms = one_round(create, claim, worker_id, index, dsn)
                    database.append(db_ms)
                    client.append(client_ms)
                print(summary(f"{label} [database clock]", database))
                print(summary(f"{label} [client, POST sent -> claim answered]", client))
        print(machine_note(scratch).text())


if __name__ == "__main__":
    main()
