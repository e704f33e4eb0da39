"""The `train` evaluator's supernet task (the `weight_sharing` optimizer's first task): the
candidate meta turns it into a weight-sharing search whose result carries the derived cells."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from morphml import CellSpace
from morphml.evaluators import EvaluatorError, context, get_evaluator, supernet
from morphml.evaluators.datasets import Dataset
from morphml.optimizers import Objective, Outcome
from morphml.optimizers.derived import derived_configs
from morphml.optimizers.weight_sharing import WeightSharing
from morphml.weight_sharing import Derived, SearchSettings

OBJECTIVES = [Objective("val_accuracy")]
PARAMS = {"dataset": "digits", "train_size": 64, "val_size": 32, "seed": 3, "batch_size": 32}


def tiny_space() -> CellSpace:
    return CellSpace(
        name="tiny",
        num_nodes=3,
        ops=["skip_connect", "nor_conv_3x3", "avg_pool_3x3"],
        input_shape=[1, 8, 8],
        stem_channels=4,
        cells_per_stage=1,
        num_classes=10,
    )


def supernet_meta(space: CellSpace, **search: Any) -> dict[str, Any]:
    """The meta the weight_sharing optimizer gives its supernet task (and its placeholder)."""
    optimizer = WeightSharing(space, OBJECTIVES, seed=0, top_k=2, search=search)
    (candidate,) = optimizer.ask(1)
    return {"meta": candidate.meta, "architecture": candidate.architecture}


def run_task(
    tmp_path: Path, meta: dict[str, Any], architecture: Any, params: dict[str, Any] | None = None
) -> tuple[dict[str, float], list[dict[str, float]], list[dict[str, Any]]]:
    """The train evaluator inside a worker's task context: metrics, reports, messages sent."""
    reports: list[dict[str, float]] = []
    sent: list[dict[str, Any]] = []
    task = context.TaskContext(tmp_path, sent.append, meta=meta)
    with context.bound(task):
        metrics = get_evaluator("train")(architecture, 0.0, params or PARAMS, reports.append)
    return metrics, reports, sent


@pytest.fixture(autouse=True)
def in_task_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker runs each task in its task dir: checkpoints and weights are written there."""
    monkeypatch.chdir(tmp_path)


class FakeSearch:
    """`morphml.weight_sharing.search` that records its input and returns fixed cells."""

    def __init__(self, found: list[Derived]) -> None:
        self.found = found
        self.calls: list[tuple[CellSpace, SearchSettings, Dataset, str]] = []

    def __call__(
        self, space: CellSpace, settings: SearchSettings, data: Dataset, report: Any, device: str
    ) -> list[Derived]:
        self.calls.append((space, settings, data, device))
        report({"epoch": 1, "step": 1, "progress": 1.0, "supernet_val_accuracy": 0.4})
        return self.found


def test_the_meta_turns_a_train_task_into_a_search_whose_result_holds_the_cells(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    space = tiny_space()
    cells = [Derived(space.sample(seed).config, 0.9 - seed / 10) for seed in (1, 2)]
    fake = FakeSearch(cells)
    monkeypatch.setattr(supernet, "search", fake)
    task = supernet_meta(space, epochs=4)
    metrics, reports, _ = run_task(tmp_path, task["meta"], task["architecture"])
    ((searched, settings, data, device),) = fake.calls
    assert searched == space and device == "cpu"
    assert (settings.method, settings.top_k, settings.epochs) == ("darts", 2, 4)
    assert (settings.seed, settings.batch_size) == (3, 32)  # from the train params
    assert (len(data.y_train), len(data.y_val)) == (64, 32)
    assert metrics["supernet_val_accuracy"] == 0.8 and metrics["derived"] == 2
    assert "val_accuracy" not in metrics  # the placeholder must not reach the leaderboard
    assert [(d.config, d.score) for d in derived_configs(space, metrics)] == [
        (c.config, c.score) for c in cells
    ]
    assert reports == [{"epoch": 1, "step": 1, "progress": 1.0, "supernet_val_accuracy": 0.4}]


def test_search_settings_override_what_the_params_say(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    space = tiny_space()
    fake = FakeSearch([Derived(space.sample(1).config, 0.5)])
    monkeypatch.setattr(supernet, "search", fake)
    task = supernet_meta(space, seed=11, batch_size=8)
    run_task(tmp_path, task["meta"], task["architecture"])
    assert (fake.calls[0][1].seed, fake.calls[0][1].batch_size) == (11, 8)


@pytest.mark.parametrize("method", ["darts", "spos"])
def test_a_real_search_reports_each_epoch_checkpoints_and_derives_cells_of_the_space(
    tmp_path: Path, method: str
) -> None:
    space = tiny_space()
    search = {"epochs": 2, "population": 4, "generations": 1}
    optimizer = WeightSharing(space, OBJECTIVES, seed=0, method=method, top_k=2, search=search)
    (candidate,) = optimizer.ask(1)
    metrics, reports, sent = run_task(tmp_path, candidate.meta, candidate.architecture)
    assert [r["epoch"] for r in reports if "epoch" in r] == [1, 2]
    assert [m["checkpoint"]["epoch"] for m in sent if "checkpoint" in m] == [1, 2]
    assert 0 <= metrics["supernet_val_accuracy"] <= 1 and metrics["supernet_seconds"] > 0
    optimizer.tell(candidate, metrics, Outcome.COMPLETED)
    finals = optimizer.ask(5)
    assert 1 <= len(finals) <= 2 and all(space.contains(f.architecture) for f in finals)


def test_without_the_supernet_phase_train_trains_the_candidate(tmp_path: Path) -> None:
    space = tiny_space()
    for meta in ({}, {"phase": "final", "rank": 1, "supernet_score": 0.5}):
        metrics, reports, _ = run_task(tmp_path, meta, space.sample(0), {**PARAMS, "epochs": 1})
        assert "val_accuracy" in metrics and "derived" not in metrics and len(reports) == 1


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"space": {"type": "cell", "num_nodes": 1}}, r"candidate\.meta\.space: num_nodes"),
        ({"space": None}, r"candidate\.meta\.space: search_space: expected an object"),
        ({"space": {"type": "sequential", "name": "s", "layers": []}}, r"candidate\.meta\.space"),
        ({"search": "fast"}, r"candidate\.meta\.search: expected an object"),
        ({"search": {"epochs": 0}}, r"optimizer\.params\.search: epochs: expected an integer"),
        ({"search": {"epoch": 2}}, r"optimizer\.params\.search: epoch: unknown"),
        ({"search": {"lr": -1.0}}, r"optimizer\.params\.search: lr"),
        ({"search": {"method": "darts", "max_skip": 0}}, "weight-sharing search: max_skip"),
    ],
)
def test_bad_meta_or_settings_fail_for_good_with_the_field(
    tmp_path: Path, change: dict[str, Any], message: str
) -> None:
    if "max_skip" in str(change):  # a space of skip_connect alone cannot keep 0 skip edges
        space = CellSpace(num_nodes=3, ops=["skip_connect"], input_shape=[1, 8, 8],
                          stem_channels=4, cells_per_stage=1)  # fmt: skip
    else:
        space = tiny_space()
    task = supernet_meta(space)
    with pytest.raises(EvaluatorError, match=message):
        run_task(tmp_path, {**task["meta"], **change}, task["architecture"])
