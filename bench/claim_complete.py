"""Control-plane throughput: claim + complete round trips per second over real HTTP.

Starts a `morphml-server` on a free loopback port, creates one random-search experiment with a
large space, and runs N worker threads that each loop claim -> complete (every complete also
tells the optimizer and asks it for the next candidate, as in production).

    python bench/claim_complete.py                                  # SQLite in a temp dir
    python bench/claim_complete.py --postgres                       # a fresh database on 127.0.0.1
    python bench/claim_complete.py --workers 16 --seconds 20
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import psycopg

from morphml import IntRange, Layer, SearchSpace
from morphml.cli.processes import free_port

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


def _space() -> dict[str, object]:
    return (
        SearchSpace("bench")
        .add_layers(
            Layer.input(shape=(1, 8, 8)),
            Layer.conv2d(filters=IntRange(4, 512), kernel_size=[1, 3, 5]),
            Layer.relu(),
            Layer.flatten(),
            Layer.dense(units=IntRange(8, 4096)),
            Layer.output(units=10),
        )
        .to_dict()
    )


@contextmanager
def _database(postgres: bool) -> Iterator[str]:
    if not postgres:
        with tempfile.TemporaryDirectory() as folder:
            yield f"sqlite:///{Path(folder) / 'bench.db'}"
        return
    name = f"morphml_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def _server(database_url: str) -> Iterator[str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MORPHML_")}
    command = [sys.executable, "-m", "server.cli", "serve", "--port", str(port)]
    process = subprocess.Popen(
        [*command, "--database-url", database_url, "--log-level", "warning"], env=env
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def _wait_ready(url: str) -> None:
    for _ in range(600):
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    raise SystemExit("server did not start")


def _worker_loop(url: str, stop: threading.Event, done: list[int]) -> None:
    with httpx.Client(base_url=url, timeout=30) as http:
        worker_id = http.post("/v1/workers", json={"name": "bench", "host": "bench"}).json()["id"]
        count = 0
        while not stop.is_set():
            claim = http.post("/v1/tasks/claim", json={"worker_id": worker_id, "wait_seconds": 1})
            if claim.status_code != 200:
                continue
            task = claim.json()
            body = {"lease_token": task["lease_token"], "metrics": {"val_accuracy": 0.5}}
            http.post(f"/v1/tasks/{task['id']}/complete", json=body).raise_for_status()
            count += 1
        done.append(count)


def run(url: str, workers: int, seconds: float, parallelism: int) -> float:
    spec = {
        "name": "bench",
        "search_space": _space(),
        "optimizer": {"name": "random", "params": {}},
        "evaluator": {"kind": "proxy", "params": {}},
        "budget": {"max_evaluations": 10_000_000},
        "parallelism": parallelism,
    }
    httpx.post(f"{url}/v1/experiments", json=spec, timeout=30).raise_for_status()
    stop, done = threading.Event(), []
    threads = [
        threading.Thread(target=_worker_loop, args=(url, stop, done)) for _ in range(workers)
    ]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join()
    return sum(done) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--postgres", action="store_true", help="fresh database on 127.0.0.1:5432")
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--parallelism", type=int, default=32)
    args = parser.parse_args()
    with _database(args.postgres) as database_url, _server(database_url) as url:
        rate = run(url, args.workers, args.seconds, args.parallelism)
    kind = "postgres" if args.postgres else "sqlite"
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(
        f"{kind}: {rate:.1f} claim+complete round trips/s "
        f"({args.workers} workers, load average {load})"
    )


if __name__ == "__main__":
    main()
