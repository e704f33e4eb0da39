"""The dashboard's experiment page at scale: 100,000 tasks inserted straight into the database,
then the time from navigation start to the task table rendered in headless Chromium (the page
marks `task-table` when the first page of tasks is in the DOM), and each table query's time.

    .venv/bin/python bench/ui_load.py [--tasks 100000] [--database-url URL] [--runs 7]

Needs Debian's chromium and chromium-driver. Prints one JSON line with the figures and the load
average; bench/README.md ("Dashboard") keeps the results.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from sqlalchemy.engine import Engine

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from morphml.cli.processes import Processes, free_port, script, wait_ready  # noqa: E402
from server.db import make_engine  # noqa: E402
from server.migrations import upgrade_to_head  # noqa: E402
from server.models import TASK, TASK_METRIC  # noqa: E402

STATES = ["completed"] * 85 + ["failed"] * 5 + ["pruned"] * 8 + ["cancelled"] * 2
CHUNK = 5000


def insert_tasks(engine: Engine, experiment_id: int, count: int, seed: int = 0) -> None:
    """`count` finished tasks of realistic shape (a full candidate each, metrics, errors for the
    failed ones) and a learning curve for the latest 40, in bulk."""
    rng = random.Random(seed)
    with engine.connect() as connection:
        candidate = connection.execute(
            sa.select(TASK.candidate).where(TASK.experiment_id == experiment_id).limit(1)
        ).scalar_one()
    rows = [_task_row(experiment_id, candidate, index, rng) for index in range(count)]
    with engine.begin() as connection:
        for offset in range(0, count, CHUNK):
            connection.execute(sa.insert(TASK.id.table), rows[offset : offset + CHUNK])
        latest = connection.execute(
            sa.select(TASK.id)
            .where(TASK.experiment_id == experiment_id)
            .order_by(TASK.id.desc())
            .limit(40)
        ).scalars()
        curves = [
            {
                "task_id": task_id,
                "experiment_id": experiment_id,
                "step": step,
                "created_at": _stamp(count + step),
                "metrics": {"val_accuracy": 0.5 + 0.4 * (1 - 0.7**step) + rng.random() * 0.02},
            }
            for task_id in latest
            for step in range(1, 9)
        ]
        connection.execute(sa.insert(TASK_METRIC.id.table), curves)


def _task_row(experiment_id: int, candidate: dict[str, Any], index: int, rng: random.Random) -> Any:
    state = rng.choice(STATES)
    accuracy = 0.5 + 0.45 * rng.random() ** 0.5
    config = {"1.units": rng.choice([8, 16, 32, 64]), "2.fn": rng.choice(["relu", "tanh", "gelu"])}
    return {
        "experiment_id": experiment_id,
        "state": state,
        "candidate": {**candidate, "architecture": {**candidate["architecture"], "config": config}},
        "candidate_key": f"synthetic-{index}@None",
        "attempt": 1,
        "max_attempts": 3,
        "metrics": {"val_accuracy": accuracy, "num_params": 1000 + index % 5000}
        if state == "completed"
        else None,
        "score": accuracy if state == "completed" else None,
        "error": f"RuntimeError: synthetic failure {index}" if state == "failed" else None,
        "created_at": _stamp(index),
        "finished_at": _stamp(index + 1),
    }


def _stamp(index: int) -> datetime:
    return datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=index)


SPEC = {
    "name": "dashboard-at-scale",
    "search_space": {
        "name": "mlp",
        "layers": [
            {"type": "input", "shape": [64]},
            {"type": "dense", "units": {"choice": [8, 16, 32, 64]}},
            {"type": "activation", "fn": {"choice": ["relu", "tanh", "gelu"]}},
            {"type": "output", "units": 10},
        ],
    },
    "optimizer": {"name": "random", "params": {}},
    "objectives": [{"metric": "val_accuracy", "direction": "maximize"}],
    "evaluator": {"kind": "proxy", "params": {}},
    "budget": {"max_evaluations": 1_000_000},
    "parallelism": 1,
}


_TABLE_MARK = (
    "const m = performance.getEntriesByName('task-table'); return m.length ? m[0].startTime : null"
)


def page_load_ms(driver: Any, url: str) -> float:
    """Navigation start to the task table's first render, in ms (the page's own mark)."""
    driver.get("about:blank")
    driver.get(url)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        mark = driver.execute_script(_TABLE_MARK)
        if mark is not None:
            return float(mark)
        time.sleep(0.01)
    raise RuntimeError(f"the task table of {url} never rendered")


def query_ms(url: str, experiment_id: int) -> dict[str, float]:
    """Each table query the page can ask, timed over HTTP (median of 5)."""
    queries = {
        "id desc": "sort=id&order=desc",
        "value desc": "sort=value&order=desc",
        "finished desc": "sort=finished&order=desc",
        "failed, id": "state=failed&sort=id&order=desc",
        "completed, value": "state=completed&sort=value&order=desc",
        "last page": "sort=id&order=asc&offset=99950",
    }
    timings = {}
    with httpx.Client(base_url=url, timeout=60) as http:
        for name, query in queries.items():
            samples = []
            for _ in range(5):
                started = time.perf_counter()
                http.get(
                    f"/ui/api/experiments/{experiment_id}/tasks?{query}&limit=50"
                ).raise_for_status()
                samples.append((time.perf_counter() - started) * 1000)
            timings[name] = round(statistics.median(samples), 1)
    return timings


def run(tasks: int, database_url: str | None, runs: int) -> dict[str, Any]:
    from tests.ui.support import chromium

    with tempfile.TemporaryDirectory() as tmp:
        url_db = database_url or f"sqlite:///{Path(tmp) / 'morphml.db'}"
        engine = make_engine(url_db)
        upgrade_to_head(engine)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        processes = Processes(Path(tmp) / "logs")
        serve = [script("morphml-server"), "serve", "--host", "127.0.0.1", "--port", str(port)]
        processes.start("server", [*serve, "--database-url", url_db])
        try:
            wait_ready(url, processes)
            experiment_id = httpx.post(f"{url}/v1/experiments", json=SPEC).json()["id"]
            started = time.perf_counter()
            insert_tasks(engine, experiment_id, tasks)
            inserted_s = time.perf_counter() - started
            page = f"{url}/ui/experiments/{experiment_id}"
            with chromium() as driver:
                page_load_ms(driver, page)  # warm: the server's first queries, the JS cache
                loads = [page_load_ms(driver, page) for _ in range(runs)]
            return {
                "tasks": tasks,
                "database": engine.dialect.name,
                "insert_s": round(inserted_s, 1),
                "page_to_table_ms": {
                    "median": round(statistics.median(loads), 1),
                    "max": round(max(loads), 1),
                    "runs": [round(x, 1) for x in loads],
                },
                "table_query_ms": query_ms(url, experiment_id),
                "loadavg": [round(x, 2) for x in os.getloadavg()],
                "cpus": os.cpu_count(),
            }
        finally:
            processes.stop_all()
            engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--database-url", default=None, help="a migrated, empty database")
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    print(json.dumps(run(args.tasks, args.database_url, args.runs)))


if __name__ == "__main__":
    main()
