"""End to end over real HTTP against `morphml-server` processes: restart safety, long-poll wakeups.

Each test starts its servers on free ports on 127.0.0.1 and stops them (kill -9 where that is
the point) before it returns.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from morphml.cli.processes import free_port, wait_ready
from tests.server.support import spec, worker_body

pytestmark = pytest.mark.slow


def _command() -> list[str]:
    script = Path(sys.executable).with_name("morphml-server")
    return [str(script)] if script.exists() else [sys.executable, "-m", "server.cli"]


class Server:
    """One `morphml-server serve` process."""

    def __init__(self, database_url: str, log: Path, **settings: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("MORPHML_")}
        env.update({"MORPHML_REAPER_INTERVAL_SECONDS": "0.2", **settings})
        args = [
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--database-url",
            database_url,
        ]
        self._log = log.open("ab")
        self.process = subprocess.Popen(
            [*_command(), *args], env=env, stdout=self._log, stderr=subprocess.STDOUT
        )
        wait_ready(self.url, self)

    def check_alive(self) -> None:
        assert self.process.poll() is None, "server exited during start"

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(timeout=10)
        self._log.close()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self._log.close()


def _answers_ready(port: int) -> bool:
    """GET /readyz over a plain socket (closed deterministically, unlike a pooled client)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(b"GET /readyz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            return sock.recv(64).startswith(b"HTTP/1.1 200")
    except OSError:
        return False


@contextmanager
def serving(database_url: str, tmp_path: Path, **settings: str) -> Iterator[Server]:
    server = Server(database_url, tmp_path / "server.log", **settings)
    try:
        yield server
    finally:
        server.stop()


def _claim(http: httpx.Client, worker_id: int, wait: float = 0) -> dict[str, Any] | None:
    response = http.post(
        "/v1/tasks/claim", json={"worker_id": worker_id, "wait_seconds": wait}, timeout=wait + 10
    )
    assert response.status_code in (200, 204), response.text
    return response.json() if response.status_code == 200 else None


def _complete(http: httpx.Client, task: dict[str, Any]) -> None:
    # A function of the candidate, not the task id: the reference run gets other ids.
    value = zlib.crc32(json.dumps(task["candidate"], sort_keys=True).encode()) % 7 / 10
    body = {"lease_token": task["lease_token"], "metrics": {"val_accuracy": value}}
    assert http.post(f"/v1/tasks/{task['id']}/complete", json=body).status_code == 200


def _run_out(http: httpx.Client, worker_id: int, experiment_id: int) -> None:
    while (task := _claim(http, worker_id)) is not None:
        assert task["experiment_id"] == experiment_id
        _complete(http, task)


def _tasks(http: httpx.Client, experiment_id: int) -> list[dict[str, Any]]:
    return list(http.get(f"/v1/experiments/{experiment_id}/tasks").json()["data"])


EVOLUTION = {"name": "regularized_evolution", "params": {"population_size": 4, "sample_size": 2}}


# (parallelism, budget, completed before the kill, optimizer): with parallelism 8 the kill finds
# outcomes recorded but not yet told to the optimizer (refills wait for the low-water mark), and
# evolution's proposals depend on every outcome it was told, exactly once.
@pytest.mark.parametrize(
    ("parallelism", "budget", "done_first", "optimizer"),
    [(2, 6, 1, {"name": "random", "params": {}}), (8, 20, 3, EVOLUTION)],
)
def test_kill_9_and_restart_loses_and_duplicates_nothing(
    database_url: str,
    tmp_path: Path,
    parallelism: int,
    budget: int,
    done_first: int,
    optimizer: dict[str, Any],
) -> None:
    body = spec(budget={"max_evaluations": budget}, parallelism=parallelism, optimizer=optimizer)
    with (
        serving(database_url, tmp_path) as first,
        httpx.Client(base_url=first.url, timeout=10) as http,
    ):
        experiment_id = http.post("/v1/experiments", json=body).json()["id"]
        worker_id = http.post("/v1/workers", json=worker_body()).json()["id"]
        for _ in range(done_first):
            done = _claim(http, worker_id)
            assert done is not None
            _complete(http, done)
        running = _claim(http, worker_id)
        assert running is not None
        before = _tasks(http, experiment_id)
        first.kill()
    with (
        serving(database_url, tmp_path) as second,
        httpx.Client(base_url=second.url, timeout=10) as http,
    ):
        assert _tasks(http, experiment_id) == before  # leases keep their expiry
        beat = http.post(
            f"/v1/tasks/{running['id']}/heartbeat", json={"lease_token": running["lease_token"]}
        )
        assert beat.json()["action"] == "continue"
        _complete(http, running)
        _run_out(http, worker_id, experiment_id)
        final = http.get(f"/v1/experiments/{experiment_id}").json()
        assert (
            final["status"] == "completed"
            and final["counts"]["completed"] == budget
            and final["tasks_created"] == budget
        )
        keys = [t["candidate_key"] for t in _tasks(http, experiment_id)]
        # The same spec run without a restart proposes the same candidates: state was persisted.
        reference_id = http.post("/v1/experiments", json=body).json()["id"]
        _run_out(http, worker_id, reference_id)
        assert [t["candidate_key"] for t in _tasks(http, reference_id)] == keys
        assert len(set(keys)) == budget


def _claim_in_background(
    url: str, worker_id: int, wait: float
) -> tuple[threading.Thread, dict[str, Any]]:
    result: dict[str, Any] = {}

    def claim() -> None:
        started = time.monotonic()
        with httpx.Client(base_url=url) as http:
            result["task"] = _claim(http, worker_id, wait=wait)
        result["seconds"] = time.monotonic() - started

    thread = threading.Thread(target=claim)
    thread.start()
    time.sleep(0.5)
    return thread, result


def test_long_poll_wakes_when_an_experiment_is_created(tmp_path: Path) -> None:
    settings = {"MORPHML_CLAIM_REPOLL_SECONDS": "30"}
    url = f"sqlite:///{tmp_path / 'wake.db'}"
    with serving(url, tmp_path, **settings) as server, httpx.Client(base_url=server.url) as http:
        worker_id = http.post("/v1/workers", json=worker_body()).json()["id"]
        thread, result = _claim_in_background(server.url, worker_id, wait=20)
        http.post("/v1/experiments", json=spec())
        thread.join(timeout=30)
        assert result["task"] is not None and result["seconds"] < 10


@pytest.mark.postgres
def test_replicas_wake_each_other_through_listen_notify(postgres_url: str, tmp_path: Path) -> None:
    settings = {"MORPHML_CLAIM_REPOLL_SECONDS": "30"}
    with (
        serving(postgres_url, tmp_path, **settings) as one,
        serving(postgres_url, tmp_path, **settings) as two,
        httpx.Client(base_url=two.url, timeout=10) as admin,
    ):
        worker_id = admin.post("/v1/workers", json=worker_body()).json()["id"]
        thread, result = _claim_in_background(one.url, worker_id, wait=20)
        admin.post("/v1/experiments", json=spec())
        thread.join(timeout=30)
        assert result["task"] is not None and result["seconds"] < 10
