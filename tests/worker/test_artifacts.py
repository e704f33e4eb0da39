"""The agent's artifacts: final weights before the result, checkpoints in the background, the
outbox when the store refuses, and a resumed attempt's checkpoint fetched (or not) for the child."""

from __future__ import annotations

import hashlib
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from morphml.wire import (
    ARTIFACT_KIND_HEADER,
    EPOCH_HEADER,
    LEASE_TOKEN_HEADER,
    SHA256_HEADER,
    ClaimedTask,
)
from tests.worker.fakes import (
    AgentThread,
    FakeEvaluation,
    FakeServer,
    artifact_answer,
    make_agent,
    make_task,
    wait_for,
)
from worker.artifacts import Saved, upload
from worker.http import Backoff, ServerApi
from worker.runner import Outcome
from worker.task_artifacts import CheckpointUploader

WEIGHTS = "/v1/tasks/1/artifacts/weights.pt"
CHECKPOINT = "/v1/tasks/1/artifacts/checkpoint.pt"


class Evaluations:
    """A `start_evaluation` whose fakes save real files in their task dirs, at set times."""

    def __init__(self, *plans: list[tuple[float, str, str, int | None]], **fake: Any) -> None:
        self.plans = list(plans)
        self.fake = fake
        self.specs: list[dict[str, Any]] = []

    def __call__(self, task_dir: Path, spec: dict[str, Any], env: dict[str, str]) -> Any:
        self.specs.append(spec)
        plan = self.plans.pop(0) if self.plans else []
        evaluation = FakeEvaluation(**self.fake)
        for at, name, kind, epoch in plan:
            task_dir.mkdir(parents=True, exist_ok=True)
            path = task_dir / f"{name}-{epoch}"
            path.write_bytes(f"{name} {epoch}".encode() * 1000)
            saved = Saved(name, path, kind, epoch)  # type: ignore[arg-type]
            evaluation.saves.append((at, saved))
        return evaluation


def run_one(server: FakeServer, tmp_path: Path, evaluations: Evaluations, **settings: Any) -> None:
    agent = make_agent(server, tmp_path, start_evaluation=evaluations, **settings)
    thread = AgentThread(agent)
    wait_for(lambda: server.bodies("/complete") or server.bodies("/fail"), timeout=10)
    thread.stop()


def order(server: FakeServer) -> list[str]:
    return [p for _, p, _ in server.calls if "artifacts" in p or p.endswith(("/complete", "/fail"))]


def test_final_weights_go_up_before_the_result_with_lease_kind_and_checksum(
    tmp_path: Path,
) -> None:
    server = FakeServer(tasks=[make_task(1)])
    run_one(server, tmp_path, Evaluations([(0.0, "weights.pt", "weights", None)]))
    assert order(server) == [f"PUT {WEIGHTS}", "/v1/tasks/1/complete"]
    data, headers = server.stored[WEIGHTS]
    assert data == b"weights.pt None" * 1000
    assert headers[LEASE_TOKEN_HEADER] == "token-1" and headers[ARTIFACT_KIND_HEADER] == "weights"
    assert headers[SHA256_HEADER] == hashlib.sha256(data).hexdigest()
    assert not (tmp_path / "tasks" / "1-1").exists()


def test_checkpoints_go_up_while_the_task_runs_and_heartbeats_go_on(tmp_path: Path) -> None:
    server = FakeServer(tasks=[make_task(1, lease_seconds=0.3)])
    plan = [(0.1, "checkpoint.pt", "checkpoint", 1), (0.4, "checkpoint.pt", "checkpoint", 2)]
    run_one(server, tmp_path, Evaluations(plan, seconds=0.8))
    epochs = [
        headers[EPOCH_HEADER]
        for _, path, _ in server.calls
        if path == f"PUT {CHECKPOINT}"
        for headers in [server.stored[CHECKPOINT][1]]
    ]
    assert epochs and server.stored[CHECKPOINT][0] == b"checkpoint.pt 2" * 1000
    assert len(server.bodies("/heartbeat")) >= 2


def test_a_store_that_refuses_keeps_the_weights_in_the_outbox_not_the_result(
    tmp_path: Path,
) -> None:
    full = httpx.Response(507, json={"detail": "the artifact store is full"})
    server = FakeServer(tasks=[make_task(1)], script={f"PUT {WEIGHTS}": [full]})
    agent = make_agent(server, tmp_path, start_evaluation=Evaluations(
        [(0.0, "weights.pt", "weights", None)]))  # fmt: skip
    thread = AgentThread(agent)
    wait_for(lambda: server.bodies("/complete"), timeout=10)
    thread.stop()
    assert WEIGHTS not in server.stored
    [pending] = agent.artifacts.pending()
    assert pending.saved.name == "weights.pt" and pending.lease_token == "token-1"
    # The next flush sends it (the store has room again) and empties the outbox.
    agent.artifacts._retry_at = 0.0
    agent.artifacts.flush(agent.api, interrupt=threading.Event())
    assert server.stored[WEIGHTS][0] == b"weights.pt None" * 1000
    assert agent.artifacts.pending() == []
    assert list((tmp_path / "outbox" / "artifacts").iterdir()) == []


def test_the_outbox_backs_off_while_the_store_stays_full(tmp_path: Path) -> None:
    full = [httpx.Response(507, json={"detail": "full"}) for _ in range(3)]
    server = FakeServer(tasks=[make_task(1)], script={f"PUT {WEIGHTS}": full})
    agent = make_agent(server, tmp_path, start_evaluation=Evaluations(
        [(0.0, "weights.pt", "weights", None)]))  # fmt: skip
    thread = AgentThread(agent)
    wait_for(lambda: server.bodies("/complete"), timeout=10)
    thread.stop()
    for _ in range(3):
        agent.artifacts.flush(agent.api, interrupt=threading.Event())
    puts = [path for _, path, _ in server.calls if path == f"PUT {WEIGHTS}"]
    assert len(puts) == 2  # the one after the task, one flush; the next ones wait 30 s
    assert 25 < agent.artifacts._retry_at - time.monotonic() <= 30
    agent.artifacts._retry_at = 0.0  # 30 s later: it fails again, and the next wait doubles
    agent.artifacts.flush(agent.api, interrupt=threading.Event())
    assert 55 < agent.artifacts._retry_at - time.monotonic() <= 60


def test_a_stale_lease_drops_the_kept_weights(tmp_path: Path) -> None:
    full = httpx.Response(503, json={"detail": "store unavailable"})
    stale = httpx.Response(409, json={"detail": "stale lease token"})
    server = FakeServer(tasks=[make_task(1)], script={f"PUT {WEIGHTS}": [full, stale]})
    agent = make_agent(server, tmp_path, start_evaluation=Evaluations(
        [(0.0, "weights.pt", "weights", None)]))  # fmt: skip
    thread = AgentThread(agent)
    wait_for(lambda: server.bodies("/complete"), timeout=10)
    thread.stop()
    agent.artifacts._retry_at = 0.0
    agent.artifacts.flush(agent.api, interrupt=threading.Event())
    assert agent.artifacts.pending() == [] and WEIGHTS not in server.stored


def test_a_retryable_failure_first_sends_its_latest_checkpoint(tmp_path: Path) -> None:
    def slow(request: httpx.Request) -> httpx.Response:
        time.sleep(0.3)  # still going up when the child dies
        data = request.read()
        server.stored[request.url.path] = (data, request.headers)
        return httpx.Response(201, json=artifact_answer(request.url.path, data, request.headers))

    crash = Outcome(error="killed by SIGKILL", retryable=True)
    server = FakeServer(tasks=[make_task(1)], script={f"PUT {CHECKPOINT}": [slow]})
    run_one(server, tmp_path, Evaluations(
        [(0.0, "checkpoint.pt", "checkpoint", 1), (0.05, "checkpoint.pt", "checkpoint", 2)],
        seconds=0.1, outcome=crash))  # fmt: skip
    assert order(server) == [f"PUT {CHECKPOINT}", f"PUT {CHECKPOINT}", "/v1/tasks/1/fail"]
    assert server.stored[CHECKPOINT][0] == b"checkpoint.pt 2" * 1000


def stored_checkpoint(task_id: int, data: bytes, sha256: str | None = None) -> dict[str, Any]:
    return {"task_id": task_id, "name": "checkpoint.pt", "kind": "checkpoint", "size": len(data),
            "sha256": sha256 or hashlib.sha256(data).hexdigest(), "status": "stored",
            "epoch": 2, "created_at": "2026-01-01T00:00:00Z"}  # fmt: skip


def test_a_resumed_attempt_gets_the_checkpoint_in_its_spec(tmp_path: Path) -> None:
    data = b"the state after epoch 2"
    task = {**make_task(1), "attempt": 2, "checkpoint": stored_checkpoint(1, data)}
    server = FakeServer(tasks=[task])
    server.stored[CHECKPOINT] = (data, httpx.Headers())
    seen: list[bytes] = []

    class Reading(Evaluations):
        def __call__(self, task_dir: Path, spec: dict[str, Any], env: dict[str, str]) -> Any:
            seen.append(Path(spec["checkpoint"]).read_bytes())
            assert Path(spec["checkpoint"]).is_relative_to(task_dir)
            return super().__call__(task_dir, spec, env)

    run_one(server, tmp_path, Reading())
    assert seen == [data]
    get = [path for _, path, _ in server.calls if path.startswith("GET")]
    assert get == [f"GET {CHECKPOINT}"]


@pytest.mark.parametrize("problem", ["corrupt", "missing", "refused", "unreachable"])
def test_a_checkpoint_that_cannot_be_had_means_a_fresh_start(tmp_path: Path, problem: str) -> None:
    data = b"the state after epoch 2"
    task = {**make_task(1), "attempt": 2, "checkpoint": stored_checkpoint(1, data)}
    server = FakeServer(tasks=[task])
    replies: dict[str, Any] = {
        "corrupt": httpx.Response(200, content=b"the state after epoch 3"),
        "refused": httpx.Response(403, json={"detail": "no"}),
        "unreachable": httpx.ConnectError("refused"),
    }
    if problem in replies:
        server.script[f"GET {CHECKPOINT}"] = [replies[problem]]
    evaluations = Evaluations()
    run_one(server, tmp_path, evaluations)
    assert "checkpoint" not in evaluations.specs[0]
    assert server.bodies("/complete")  # the task ran all the same


def test_a_newer_checkpoint_supersedes_one_not_yet_sent(tmp_path: Path) -> None:
    release = threading.Event()
    sent: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        release.wait(5)
        data = request.read()
        sent.append(request.headers[EPOCH_HEADER])
        return httpx.Response(201, json=artifact_answer(request.url.path, data, request.headers))

    api = ServerApi(httpx.Client(transport=httpx.MockTransport(handler), base_url="http://s"))
    task = ClaimedTask.model_validate(make_task(1))
    uploader = CheckpointUploader(api, task, upload_seconds=5)
    for epoch in (1, 2, 3):
        path = tmp_path / f"c{epoch}"
        path.write_bytes(b"x")
        uploader.offer(Saved("checkpoint.pt", path, "checkpoint", epoch))
        time.sleep(0.05)
    release.set()
    uploader.close(flush_within=5)
    assert sent == ["1", "3"]


def test_an_upload_retries_a_blip_and_gives_up_at_its_deadline(tmp_path: Path) -> None:
    calls: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        raise httpx.ConnectError("refused")

    api = ServerApi(httpx.Client(transport=httpx.MockTransport(handler), base_url="http://s"),
                    backoff=Backoff(base=0.01, cap=0.02))  # fmt: skip
    path = tmp_path / "w"
    path.write_bytes(b"w")
    with pytest.raises(Exception, match="ConnectError"):
        upload(api, 1, "t", Saved("weights.pt", path, "weights"), deadline=time.monotonic() + 0.2)
    assert len(calls) > 2


def test_a_file_outside_the_task_dir_is_not_uploaded(tmp_path: Path) -> None:
    message = {"artifact": {"name": "token", "path": str(tmp_path / "secret"), "kind": "file"}}
    with pytest.raises(ValueError, match="outside the task dir"):
        Saved.from_message(message, tmp_path / "tasks" / "1-1")
    with pytest.raises(ValueError, match="bad artifact"):
        Saved.from_message({"artifact": {"name": "../x", "path": "x", "kind": "file"}}, tmp_path)
