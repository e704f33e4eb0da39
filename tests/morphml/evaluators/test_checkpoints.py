"""`train` on a worker: a checkpoint per epoch, final weights, and resuming as if never stopped."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

import pytest
import torch

from morphml.evaluators import context, get_evaluator
from tests.morphml.evaluators.test_train import small_cnn

PARAMS = {"seed": 3, "train_size": 300, "val_size": 100, "lr": 0.01}
SCORES = ("val_accuracy", "val_loss")


def train_in_task(
    task_dir: Path, epochs: int, **files: Path | None
) -> tuple[dict[str, float], list[dict[str, Any]]]:
    """`train` as a worker's child runs it: in its task dir, under a bound context."""
    sent: list[dict[str, Any]] = []
    task_dir.mkdir(exist_ok=True)
    here = Path.cwd()
    os.chdir(task_dir)
    try:
        with context.bound(context.TaskContext(task_dir, sent.append, **files)):
            metrics = get_evaluator("train")(small_cnn(), epochs, PARAMS, lambda m: None)
    finally:
        os.chdir(here)
    return metrics, sent


def test_each_epoch_sends_a_checkpoint_and_the_end_its_weights(tmp_path: Path) -> None:
    metrics, sent = train_in_task(tmp_path / "t", 2)
    checkpoints = [m["checkpoint"] for m in sent if "checkpoint" in m]
    assert [c["epoch"] for c in checkpoints] == [1, 2]
    assert {c["name"] for c in checkpoints} == {"checkpoint.pt"}
    weights = sent[-1]["artifact"]
    assert weights["name"] == "weights.pt" and weights["kind"] == "weights"
    model = small_cnn().to_module()
    model.load_state_dict(torch.load(weights["path"], weights_only=True))
    assert "resumed_from_epoch" not in metrics


def test_a_resumed_training_ends_exactly_where_an_unbroken_one_does(tmp_path: Path) -> None:
    unbroken, _ = train_in_task(tmp_path / "a", 3)
    train_in_task(tmp_path / "b", 2)  # "killed" after its second epoch's checkpoint
    saved = tmp_path / "b" / "checkpoint-2.pt"
    assert not (tmp_path / "b" / "checkpoint-1.pt").exists()
    resumed, sent = train_in_task(tmp_path / "c", 3, checkpoint=saved)
    assert resumed["resumed_from_epoch"] == 2
    assert [m["checkpoint"]["epoch"] for m in sent if "checkpoint" in m] == [3]
    for key in SCORES:
        assert resumed[key] == unbroken[key]


def test_a_checkpoint_of_the_last_epoch_only_validates(tmp_path: Path) -> None:
    unbroken, _ = train_in_task(tmp_path / "a", 2)
    resumed, sent = train_in_task(tmp_path / "b", 2, checkpoint=tmp_path / "a" / "checkpoint-2.pt")
    assert resumed["resumed_from_epoch"] == 2
    assert resumed["val_accuracy"] == unbroken["val_accuracy"]
    assert not [m for m in sent if "checkpoint" in m]


@pytest.mark.parametrize("content", [b"", b"not a checkpoint", None])
def test_a_corrupt_or_missing_checkpoint_restarts_from_epoch_0(
    tmp_path: Path, content: bytes | None
) -> None:
    unbroken, _ = train_in_task(tmp_path / "a", 2)
    broken = tmp_path / "broken.pt"
    if content is not None:
        broken.write_bytes(content)
    metrics, _ = train_in_task(tmp_path / "b", 2, checkpoint=broken)
    assert "resumed_from_epoch" not in metrics
    for key in SCORES:
        assert metrics[key] == unbroken[key]


def test_a_checkpoint_of_another_model_restarts_from_epoch_0(tmp_path: Path) -> None:
    other = tmp_path / "other.pt"
    torch.save({"epoch": 1, "model": {"w": torch.zeros(1)}, "optimizer": {}, "rng": {}}, other)
    metrics, _ = train_in_task(tmp_path / "b", 1, checkpoint=other)
    assert "resumed_from_epoch" not in metrics and metrics["val_accuracy"] > 0


def test_a_full_disk_costs_the_checkpoint_not_the_training(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = torch.save

    def full(obj: Any, path: Any, *args: Any, **kwargs: Any) -> None:
        if "checkpoint" in str(path):
            raise OSError(errno.ENOSPC, "No space left on device")
        real(obj, path, *args, **kwargs)

    monkeypatch.setattr(torch, "save", full)
    metrics, sent = train_in_task(tmp_path / "t", 2)
    assert metrics["val_accuracy"] > 0
    assert not [m for m in sent if "checkpoint" in m]
    assert sent[-1]["artifact"]["kind"] == "weights"
    assert not list((tmp_path / "t").glob("*.tmp"))


def test_warm_start_loads_the_lower_rung_weights(tmp_path: Path) -> None:
    _, sent = train_in_task(tmp_path / "low", 2)
    metrics, _ = train_in_task(tmp_path / "high", 1, warm_start=Path(sent[-1]["artifact"]["path"]))
    assert metrics["warm_started"] == 1


def test_outside_a_worker_nothing_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    get_evaluator("train")(small_cnn(), 1, PARAMS, lambda m: None)
    assert list(tmp_path.iterdir()) == []
