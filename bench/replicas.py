"""Several server replicas on one Postgres: the time from a task's creation on replica A to its
claim by a worker long-polling replica B (the wake-up rides LISTEN/NOTIFY), beside the same
figure when creator and claimer share a replica.

    .venv/bin/python bench/replicas.py [--rounds 40]

Both ends are read from the database clock (the task's created_at and claimed_at), so no two
clocks are compared; the client-side figure (POST sent -> claim answered) is an upper bound.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cp_env import fresh_postgres, machine_note, running_server, scratch_dir

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=40)
    rounds = parser.parse_args().rounds
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
