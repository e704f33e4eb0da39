"""A search on a worker checkpoints every supernet epoch, and a resumed attempt ends exactly
where an unbroken one does."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from morphml.evaluators import context
from morphml.weight_sharing import Derived, SearchSettings, search
from tests.morphml.weight_sharing.helpers import tiny_digits, tiny_space

SETTINGS = {
    "darts": SearchSettings(epochs=3, top_k=2, arch_lr=0.01, seed=2),
    "darts-second-order": SearchSettings(epochs=3, order=2, top_k=2, arch_lr=0.01, seed=2),
    "spos": SearchSettings(method="spos", epochs=3, population=4, generations=1, top_k=2),
}


class Killed(Exception):
    """The task's process dying after a checkpoint."""


def search_in_task(
    task_dir: Path, settings: SearchSettings, checkpoint: Path | None = None, kill_at: int = 0
) -> tuple[list[Derived], list[dict[str, Any]], list[dict[str, float]]]:
    """search as a worker's child runs it: in its task dir, under a bound context."""
    sent: list[dict[str, Any]] = []
    reports: list[dict[str, float]] = []

    def report(metrics: dict[str, float]) -> None:
        if metrics.get("epoch") == kill_at:
            raise Killed
        reports.append(metrics)

    task_dir.mkdir(exist_ok=True)
    here = Path.cwd()
    os.chdir(task_dir)
    try:
        with context.bound(context.TaskContext(task_dir, sent.append, checkpoint=checkpoint)):
            found = search(tiny_space(), settings, tiny_digits(), report, device="cpu")
    finally:
        os.chdir(here)
    return found, [m["checkpoint"] for m in sent if "checkpoint" in m], reports


@pytest.fixture(scope="module")
def unbroken(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Derived], Path]:
    """An unbroken DARTS search, and its task dir."""
    task_dir = tmp_path_factory.mktemp("unbroken")
    found, _, _ = search_in_task(task_dir, SETTINGS["darts"])
    return found, task_dir


@pytest.mark.parametrize("method", list(SETTINGS))
def test_a_resumed_search_ends_exactly_where_an_unbroken_one_does(
    tmp_path: Path, method: str
) -> None:
    settings = SETTINGS[method]
    unbroken, sent, reports = search_in_task(tmp_path / "a", settings)
    assert [c["epoch"] for c in sent] == [1, 2, 3]
    with pytest.raises(Killed):
        search_in_task(tmp_path / "b", settings, kill_at=3)
    saved = tmp_path / "b" / "supernet-checkpoint-2.pt"
    assert saved.exists() and not (tmp_path / "b" / "supernet-checkpoint-1.pt").exists()
    resumed, sent, resumed_reports = search_in_task(tmp_path / "c", settings, checkpoint=saved)
    assert [c["epoch"] for c in sent] == [3]
    assert resumed == unbroken
    assert resumed_reports == [r for r in reports if r.get("epoch", 3) >= 3]


def test_a_finished_searchs_checkpoint_only_derives(
    tmp_path: Path, unbroken: tuple[list[Derived], Path]
) -> None:
    last = unbroken[1] / "supernet-checkpoint-3.pt"
    resumed, sent, reports = search_in_task(tmp_path, SETTINGS["darts"], checkpoint=last)
    assert resumed == unbroken[0] and not sent and not reports


@pytest.mark.parametrize("content", [b"", b"not a checkpoint", None, "other settings"])
def test_a_checkpoint_that_cannot_be_used_restarts_from_epoch_0(
    tmp_path: Path, content: bytes | str | None, unbroken: tuple[list[Derived], Path]
) -> None:
    broken = tmp_path / "broken.pt"
    if content == "other settings":  # a real checkpoint, of another search
        other = SearchSettings(epochs=3, top_k=2, arch_lr=0.01, seed=3)
        search_in_task(tmp_path / "o", other)
        broken = tmp_path / "o" / "supernet-checkpoint-3.pt"
    elif isinstance(content, bytes):
        broken.write_bytes(content)
    found, sent, _ = search_in_task(tmp_path / "b", SETTINGS["darts"], checkpoint=broken)
    assert [c["epoch"] for c in sent] == [1, 2, 3]
    assert found == unbroken[0]


def test_outside_a_worker_nothing_is_written(tmp_path: Path) -> None:
    here = Path.cwd()
    os.chdir(tmp_path)
    try:
        search(tiny_space(), SearchSettings(epochs=1), tiny_digits(), device="cpu")
    finally:
        os.chdir(here)
    assert list(tmp_path.iterdir()) == []
