"""Test doubles for the agent: a scriptable control plane (httpx.MockTransport), fake children."""

from __future__ import annotations

import errno
import hashlib
import itertools
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from morphml.wire import ARTIFACT_KIND_HEADER, EPOCH_HEADER, SHA256_HEADER
from worker import disk
from worker.agent import Agent
from worker.artifacts import Saved
from worker.config import WorkerSettings
from worker.http import Backoff
from worker.resources import Gpu, Machine
from worker.runner import Outcome
from worker.task_run import StartEvaluation

Reply = httpx.Response | Exception | Callable[[httpx.Request], httpx.Response]


def make_task(task_id: int = 1, lease_seconds: float = 3.0, **evaluator: Any) -> dict[str, Any]:
    return {
        "id": task_id,
        "experiment_id": 7,
        "candidate": {"architecture": {"nodes": []}, "budget": None, "meta": {}},
        "evaluator": {"kind": "python", "params": {}, **evaluator},
        "objectives": [],
        "budget": 2.0,
        "attempt": 1,
        "lease_token": f"token-{task_id}",
        "lease_expires_at": "2026-01-01T00:00:00Z",
        "lease_seconds": lease_seconds,
    }


def worker_answer(worker_id: int) -> dict[str, Any]:
    """What POST /v1/workers answers (a `WorkerPublic`)."""
    return {
        "id": worker_id,
        "name": "w",
        "host": "test",
        "resources": {},
        "labels": {},
        "status": "online",
        "created_at": "2026-01-01T00:00:00Z",
        "last_seen_at": "2026-01-01T00:00:00Z",
        "current_tasks": [],
    }


def heartbeat_answer(action: str = "continue", reason: str | None = None) -> dict[str, Any]:
    """What POST /v1/tasks/{id}/heartbeat answers (a `HeartbeatAnswer`)."""
    expires = "2026-01-01T00:01:00Z" if action == "continue" else None
    return {"action": action, "reason": reason, "lease_expires_at": expires}


def task_answer(task_id: int) -> dict[str, Any]:
    """What POST /v1/tasks/{id}/complete answers (a `TaskPublic`)."""
    return {
        "id": task_id, "experiment_id": 7, "state": "completed", "candidate": {},
        "candidate_key": "k", "budget": None, "attempt": 1, "max_attempts": 3, "worker_id": 1,
        "progress": None, "step": None, "metrics": {}, "intermediate": {}, "error": None,
        "lease_expires_at": None, "created_at": "2026-01-01T00:00:00Z", "claimed_at": None,
        "finished_at": None,
    }  # fmt: skip


def artifact_answer(path: str, data: bytes, headers: httpx.Headers) -> dict[str, Any]:
    """What PUT /v1/tasks/{id}/artifacts/{name} answers (an `ArtifactPublic`)."""
    parts = path.split("/")
    epoch = headers.get(EPOCH_HEADER)
    return {
        "task_id": int(parts[3]), "name": parts[5], "kind": headers[ARTIFACT_KIND_HEADER],
        "size": len(data), "sha256": hashlib.sha256(data).hexdigest(), "status": "stored",
        "epoch": int(epoch) if epoch else None, "created_at": "2026-01-01T00:00:00Z",
    }  # fmt: skip


@dataclass
class FakeServer:
    """Hands out `tasks` one by one and records every call; `script[path]` overrides replies.

    `modern`: it has `/claim-batch` and `/complete-and-claim`; else it is an older server that
    answers them with the framework's 404, and the agent falls back to `/claim` and `/complete`.
    """

    tasks: list[dict[str, Any]] = field(default_factory=list)
    script: dict[str, list[Reply]] = field(default_factory=dict)
    calls: list[tuple[float, str, dict[str, Any]]] = field(default_factory=list)
    heartbeat_action: str = "continue"
    lock: threading.Lock = field(default_factory=threading.Lock)
    worker_ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    modern: bool = False

    # Artifacts uploaded, by path: their bytes and the request's headers.
    stored: dict[str, tuple[bytes, httpx.Headers]] = field(default_factory=dict)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if "/artifacts/" in path:
            return self._artifact(request)
        body = json.loads(request.content or b"{}")
        with self.lock:
            self.calls.append((time.monotonic(), path, body))
            scripted = self.script.get(path)
            reply = scripted.pop(0) if scripted else None
        if isinstance(reply, Exception):
            raise reply
        if callable(reply):
            return reply(request)
        return reply if reply is not None else self._default(path, body)

    def _default(self, path: str, body: dict[str, Any]) -> httpx.Response:
        if path.endswith(("/claim-batch", "/complete-and-claim")):
            return self._modern(path, body)
        if path == "/v1/workers":
            return httpx.Response(201, json=worker_answer(next(self.worker_ids)))
        if path == "/v1/tasks/claim":
            with self.lock:
                task = self.tasks.pop(0) if self.tasks else None
            return httpx.Response(200, json=task) if task else httpx.Response(204)
        if path.endswith("/heartbeat"):
            return httpx.Response(200, json=heartbeat_answer(self.heartbeat_action, "pruned"))
        return httpx.Response(200, json={})

    def _artifact(self, request: httpx.Request) -> httpx.Response:
        """PUT keeps the bytes (checking the sha256 as the real server does), GET gives them."""
        path = request.url.path
        with self.lock:
            self.calls.append((time.monotonic(), f"{request.method} {path}", {}))
            scripted = self.script.get(f"{request.method} {path}")
            reply = scripted.pop(0) if scripted else None
        if isinstance(reply, Exception):
            raise reply
        if reply is not None:
            return reply(request) if callable(reply) else reply
        if request.method == "GET":
            if path not in self.stored:
                return httpx.Response(404, json={"detail": "no such artifact"})
            data = self.stored[path][0]
            sha = hashlib.sha256(data).hexdigest()
            return httpx.Response(200, content=data, headers={SHA256_HEADER: sha})
        data = request.read()
        if hashlib.sha256(data).hexdigest() != request.headers[SHA256_HEADER]:
            return httpx.Response(422, json={"detail": "sha256 mismatch"})
        with self.lock:
            self.stored[path] = (data, request.headers)
        return httpx.Response(201, json=artifact_answer(path, data, request.headers))

    def _modern(self, path: str, body: dict[str, Any]) -> httpx.Response:
        if not self.modern:
            return httpx.Response(404, json={"detail": "Not Found"})
        if path.endswith("/claim-batch"):
            tasks = self._pop(body["max_tasks"])
            return httpx.Response(200, json={"data": tasks}) if tasks else httpx.Response(204)
        task_id = int(path.split("/")[-2])
        tasks = self._pop(body["claim"].get("max_tasks", 1))
        return httpx.Response(200, json={"task": task_answer(task_id), "next": tasks})

    def _pop(self, count: int) -> list[dict[str, Any]]:
        with self.lock:
            taken, self.tasks = self.tasks[:count], self.tasks[count:]
        return taken

    def bodies(self, suffix: str) -> list[dict[str, Any]]:
        with self.lock:
            return [body for _, path, body in self.calls if path.endswith(suffix)]

    def times(self, suffix: str) -> list[float]:
        with self.lock:
            return [at for at, path, _ in self.calls if path.endswith(suffix)]


@dataclass
class FakeEvaluation:
    """Runs for `seconds`, emitting `reports` spread over that time, then ends with `outcome`."""

    seconds: float = 0.0
    outcome: Outcome = field(default_factory=lambda: Outcome(metrics={"val_accuracy": 0.9}))
    reports: list[dict[str, float]] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    stopped: bool = False
    handed_out: int = 0
    # Files it asks the agent to upload, at the time (seconds after its start) it asks.
    saves: list[tuple[float, Saved]] = field(default_factory=list)
    saves_out: int = 0

    def poll(self) -> Outcome | None:
        if self.stopped:
            return Outcome(error="stopped", retryable=True)
        return self.outcome if time.monotonic() - self.started >= self.seconds else None

    def wait(self, timeout: float) -> None:
        left = self.seconds - (time.monotonic() - self.started)
        time.sleep(max(0.0, min(timeout, left)) if not self.stopped else 0.0)

    def read_reports(self) -> list[dict[str, float]]:
        due = len(self.reports)
        if self.seconds > 0:
            elapsed = (time.monotonic() - self.started) / self.seconds
            due = min(len(self.reports), int(elapsed * (len(self.reports) + 1)))
        fresh = self.reports[self.handed_out : due]
        self.handed_out = max(self.handed_out, due)
        return fresh

    def read_saved(self) -> list[Saved]:
        elapsed = time.monotonic() - self.started
        due = [saved for at, saved in self.saves[self.saves_out :] if at <= elapsed]
        self.saves_out += len(due)
        return due

    def stop(self) -> None:
        self.stopped = True

    def kill_now(self) -> None:
        self.stopped = True


def make_agent(
    server: FakeServer,
    work_dir: Path,
    evaluations: list[FakeEvaluation] | None = None,
    *,
    gpus: list[Gpu] | None = None,
    free_memory: Callable[[Gpu], int | None] = lambda gpu: gpu.memory_mb,
    start_evaluation: StartEvaluation | None = None,
    **settings: Any,
) -> Agent:
    """An agent on `server` whose children are the given fakes (a default one when they run out),
    unless `start_evaluation` is given."""
    queue = list(evaluations or [])

    def start(task_dir: Path, spec: dict[str, Any], env: dict[str, str]) -> FakeEvaluation:
        evaluation = queue.pop(0) if queue else FakeEvaluation()
        evaluation.started = time.monotonic()
        return evaluation

    client = httpx.Client(transport=httpx.MockTransport(server), base_url="http://server")
    defaults: dict[str, Any] = {"poll_seconds": 0, "grace_seconds": 5.0}
    config = WorkerSettings(server="http://server", work_dir=work_dir, **{**defaults, **settings})
    agent = Agent(
        client,
        config,
        machine=Machine("test", cpus=2, memory_mb=1024, gpus=tuple(gpus or ())),
        start_evaluation=start_evaluation or start,
        free_memory=free_memory,
        backoff=Backoff(base=0.01, cap=0.05),
        poll_interval=0.01,
        min_heartbeat_gap=0.05,
    )
    agent.idle_pause = 0.02
    return agent


class AgentThread:
    """Runs `agent.run()` in a thread; `stop()` requests a graceful stop and joins."""

    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self.code: int | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        self.code = self.agent.run()

    def stop(self, timeout: float = 10.0) -> int | None:
        self.agent.request_stop()
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the agent did not stop"
        return self.code


class Disk:
    """A disk that fills up: while `full`, every write of the agent under `root` (a task's
    spec.json, an outbox entry, a health probe: all go through `worker.disk.write_file`) fails
    with ENOSPC, as on a full tmpfs."""

    def __init__(self, monkeypatch: Any, root: Path) -> None:
        self.full = False
        real = disk.write_file

        def write_file(path: Path, data: bytes, *, sync: bool = False) -> None:
            if self.full and path.is_relative_to(root):
                raise OSError(errno.ENOSPC, "No space left on device", str(path))
            real(path, data, sync=sync)

        monkeypatch.setattr(disk, "write_file", write_file)


def wait_for(condition: Callable[[], Any], timeout: float = 5.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.01)
    raise AssertionError("condition not met in time")
