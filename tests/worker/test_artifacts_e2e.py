"""Artifacts end to end: a real `morphml-server` with its file store and real `morphml-worker`s.

A worker killed -9 in the middle of a `train` task: the next worker resumes after the epoch of the
last checkpoint that reached the store, trains the remaining epochs only, and the final weights
(downloaded like a user would) score the reported `val_accuracy` again.
"""

from __future__ import annotations

import io
import os
import signal
from typing import Any

import pytest
import torch

from morphml.architecture import Architecture
from morphml.evaluators.train import TrainConfig, prepare_data, validate
from morphml.wire import ArtifactPublic, ArtifactsPublic
from tests.worker.test_integration import (  # noqa: F401 (fixtures)
    BOTH_DATABASES,
    Cluster,
    cluster,
    postgres_server,
    python_evaluator,
    sqlite_server,
)

pytestmark = pytest.mark.slow

# Small batches make an epoch last long enough (about a second) to kill the worker inside one.
PARAMS = {"dataset": "digits", "epochs": 4, "lr": 0.003, "batch_size": 4, "seed": 0}


def artifacts(on: Cluster, experiment_id: int) -> list[ArtifactPublic]:
    answer = _admin_get(on, f"/v1/experiments/{experiment_id}/artifacts")
    return ArtifactsPublic.model_validate(answer.json()).data


def checkpoint_epoch(on: Cluster, experiment_id: int) -> int:
    epochs = [a.epoch or 0 for a in artifacts(on, experiment_id) if a.kind == "checkpoint"]
    return max(epochs, default=0)


def _admin_get(on: Cluster, path: str) -> Any:
    answer = on.admin.http.get(path)
    answer.raise_for_status()
    return answer


def rescore(weights: bytes, candidate: dict[str, Any]) -> float:
    architecture = Architecture.from_dict(candidate["architecture"])
    model = architecture.to_module()
    model.load_state_dict(torch.load(io.BytesIO(weights), weights_only=True))
    data = prepare_data(architecture, TrainConfig.from_params(PARAMS, None))
    x, y = torch.from_numpy(data.x_val), torch.from_numpy(data.y_val)
    return validate(model, x, y)[1]


@BOTH_DATABASES
def test_a_worker_killed_mid_training_is_resumed_elsewhere_from_its_checkpoint(
    cluster: Cluster,  # noqa: F811 (the fixture)
) -> None:
    first = cluster.start_worker("a")
    experiment_id = cluster.experiment(
        {"kind": "train", "params": PARAMS}, budget={"max_evaluations": 1}, parallelism=1,
        lease_seconds=3,
    )  # fmt: skip
    cluster.wait(lambda: checkpoint_epoch(cluster, experiment_id) >= 2, timeout=90)
    os.kill(first.pid, signal.SIGKILL)
    first.wait(10)
    resumed_from = checkpoint_epoch(cluster, experiment_id)  # the last one that made it
    cluster.start_worker("b")
    experiment = cluster.finished(experiment_id, timeout=120)
    assert experiment.status == "completed", experiment.error
    (task,) = cluster.admin.tasks(experiment_id)
    assert task.attempt == 2 and task.metrics is not None
    assert task.metrics["resumed_from_epoch"] == resumed_from and 2 <= resumed_from < 4
    assert task.metrics["epochs_trained"] == 4 - resumed_from  # the remaining epochs only
    events = _admin_get(cluster, f"/ui/api/tasks/{task.id}").json()["events"]
    (resumed,) = [e for e in events if e["kind"] == "resumed"]
    assert resumed["detail"] == {"from_epoch": resumed_from} and resumed["attempt"] == 2
    assert [e["kind"] for e in events][-2:] == ["resumed", "completed"]
    kept = {a.name: a for a in artifacts(cluster, experiment_id)}
    assert set(kept) == {"weights.pt"}  # the checkpoint went when the task finished
    assert kept["weights.pt"].status == "stored" and kept["weights.pt"].kind == "weights"
    weights = _admin_get(cluster, f"/v1/tasks/{task.id}/artifacts/weights.pt").content
    accuracy = rescore(weights, task.candidate)
    assert abs(accuracy - task.metrics["val_accuracy"]) <= 0.005


def test_a_python_evaluator_keeps_its_files_through_its_context(
    cluster: Cluster,  # noqa: F811 (the fixture)
) -> None:
    cluster.start_worker("a")
    evaluator = python_evaluator("resumes")
    experiment_id = cluster.experiment(evaluator, budget={"max_evaluations": 1}, parallelism=1)
    experiment = cluster.finished(experiment_id)
    assert experiment.status == "completed", experiment.error
    (task,) = cluster.admin.tasks(experiment_id)
    kept = {a.name: a for a in artifacts(cluster, experiment_id)}
    assert kept["notes.txt"].kind == "file" and kept["notes.txt"].status == "stored"
    notes = _admin_get(cluster, f"/v1/tasks/{task.id}/artifacts/notes.txt").content
    assert notes == b"kept"


def test_a_store_that_refuses_holds_no_result_and_the_weights_follow_later(
    cluster: Cluster,  # noqa: F811 (the fixture)
) -> None:
    store = cluster.base / "morphml.db.artifacts"
    aside = store.with_name("artifacts-aside")
    if store.exists():  # made by the first upload
        store.rename(aside)
    store.write_text("not a directory: every write of the store fails")
    try:
        worker = cluster.start_worker("a")
        params = {**PARAMS, "epochs": 1, "batch_size": 64}
        evaluator = {"kind": "train", "params": params}
        experiment_id = cluster.experiment(evaluator, budget={"max_evaluations": 1})
        experiment = cluster.finished(experiment_id)
        assert experiment.status == "completed", experiment.error  # the result got through
        assert cluster.workers is not None
        outbox = cluster.workers.log_dir / "a" / "outbox" / "artifacts"
        assert [p.name.endswith("weights.pt.data") for p in outbox.glob("*.data")] == [True]
    finally:
        store.unlink()
        if aside.exists():
            aside.rename(store)
    os.kill(worker.pid, signal.SIGTERM)
    assert worker.wait(20) == 0
    cluster.start_worker("a")  # the same work dir: its outbox is flushed at start
    (task,) = cluster.admin.tasks(experiment_id)
    path = f"/v1/tasks/{task.id}/artifacts/weights.pt"
    cluster.wait(lambda: cluster.admin.http.get(path).status_code == 200, timeout=60)
    assert not list(outbox.glob("*.data"))


def test_an_asha_promotion_starts_from_its_lower_rungs_weights(
    cluster: Cluster,  # noqa: F811 (the fixture)
) -> None:
    cluster.start_worker("a")
    params = {**PARAMS, "batch_size": 64}  # the budget sets the epochs: 1 on rung 0, 3 above
    asha = {"name": "asha", "params": {"min_budget": 1, "max_budget": 3, "eta": 3}}
    experiment_id = cluster.experiment(
        {"kind": "train", "params": params}, optimizer=asha, parallelism=1,
        budget={"max_evaluations": 4},
    )  # fmt: skip
    experiment = cluster.finished(experiment_id, timeout=120)
    assert experiment.status == "completed", experiment.error
    tasks = cluster.admin.tasks(experiment_id)
    (promoted,) = [t for t in tasks if t.budget == 3]
    (lower,) = [t for t in tasks if t.budget == 1 and t.candidate == {
        **promoted.candidate, "budget": 1.0, "meta": {"rung": 0}}]  # fmt: skip
    assert promoted.candidate["meta"]["promoted_from"] == 1
    assert promoted.metrics is not None and promoted.metrics["warm_started"] == 1
    assert lower.metrics is not None and "warm_started" not in lower.metrics
    assert cluster.workers is not None
    log = (cluster.workers.log_dir / "a.log").read_text()
    assert f"task {promoted.id} (attempt 1): fetched its warm start weights.pt" in log
