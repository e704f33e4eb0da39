"""Real evaluation processes behind a fake control plane: what `train` and a `python` evaluator
save reaches the server, and a resumed attempt goes on from the checkpoint it is claimed with."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any

import httpx
import pytest
import torch

from tests.morphml.evaluators.test_train import small_cnn
from tests.worker.fakes import AgentThread, FakeServer, make_agent, make_task, wait_for
from worker.task_run import start_child

ROOT = Path(__file__).resolve().parents[2]
TRAIN = {"kind": "train", "params": {"seed": 1, "train_size": 200, "val_size": 100, "lr": 0.01}}


def task(task_id: int, evaluator: dict[str, Any], budget: float, **extra: Any) -> dict[str, Any]:
    body = make_task(task_id, lease_seconds=30)
    architecture = small_cnn().to_dict()
    return {**body, "candidate": {"architecture": architecture}, "evaluator": evaluator,
            "budget": budget, **extra}  # fmt: skip


def serve(server: FakeServer, tmp_path: Path) -> list[dict[str, Any]]:
    agent = make_agent(server, tmp_path, start_evaluation=start_child, allow=["tests.worker"])
    thread = AgentThread(agent)
    try:
        wait_for(lambda: server.bodies("/complete") or server.bodies("/fail"), timeout=60)
    finally:
        thread.stop(30)
    return server.bodies("/complete")


def checkpoint_of(server: FakeServer, task_id: int) -> dict[str, Any]:
    data, headers = server.stored[f"/v1/tasks/{task_id}/artifacts/checkpoint.pt"]
    epoch = int(headers["x-morphml-epoch"])
    return {"task_id": task_id, "name": "checkpoint.pt", "kind": "checkpoint", "epoch": epoch,
            "size": len(data), "sha256": hashlib.sha256(data).hexdigest(), "status": "stored",
            "created_at": "2026-01-01T00:00:00Z"}  # fmt: skip


def test_train_uploads_its_checkpoints_and_weights_and_a_retry_resumes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MORPHML_TORCH_THREADS", "1")
    server = FakeServer(tasks=[task(1, TRAIN, 3)])
    [first] = serve(server, tmp_path / "a")
    weights, _ = server.stored["/v1/tasks/1/artifacts/weights.pt"]
    model = small_cnn().to_module()
    model.load_state_dict(torch.load(io.BytesIO(weights), weights_only=True))
    # The same task again, claimed with the last checkpoint this run left (attempt 2).
    checkpoint = checkpoint_of(server, 1)
    again = FakeServer(tasks=[task(1, TRAIN, 3, attempt=2, checkpoint=checkpoint)])
    again.stored = dict(server.stored)
    [second] = serve(again, tmp_path / "b")
    assert second["metrics"]["resumed_from_epoch"] == checkpoint["epoch"]
    assert second["metrics"]["val_accuracy"] == first["metrics"]["val_accuracy"]


def test_a_python_evaluator_resumes_through_its_context(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    evaluator = {"kind": "python", "params": {
        "function": "tests.worker.user_functions:resumes", "notes_dir": str(outside)}}  # fmt: skip
    data = b"2"
    checkpoint = {"task_id": 1, "name": "checkpoint.pt", "kind": "checkpoint", "size": 1,
                  "sha256": hashlib.sha256(data).hexdigest(), "status": "stored", "epoch": 2,
                  "created_at": "2026-01-01T00:00:00Z"}  # fmt: skip
    server = FakeServer(tasks=[task(1, evaluator, 4, attempt=2, checkpoint=checkpoint)])
    server.stored["/v1/tasks/1/artifacts/checkpoint.pt"] = (data, httpx.Headers())
    [result] = serve(server, tmp_path / "w")
    assert result["metrics"] == {"resumed_from_epoch": 2.0}
    # A file from outside the task dir was copied in, then uploaded as kind `file`.
    notes, headers = server.stored["/v1/tasks/1/artifacts/notes.txt"]
    assert notes == b"kept" and headers["x-morphml-artifact-kind"] == "file"
