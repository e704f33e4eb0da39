"""DARTS over a tiny cell space: valid distinct cells, the skip limit, early stopping, and a
synthetic task whose best op it must find."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from morphml.evaluators.datasets import Dataset
from morphml.space.cell import CellSpace
from morphml.weight_sharing import Derived, SearchSettings, search
from morphml.weight_sharing.darts import Collapse
from tests.morphml.weight_sharing.helpers import stripes, tiny_digits, tiny_space


def hashes(space: CellSpace, found: list[Derived]) -> set[str]:
    return {space.build(d.config).hash for d in found}


@pytest.mark.parametrize("order", [1, 2])
def test_darts_returns_distinct_valid_cells_within_the_skip_limit(order: int) -> None:
    space = tiny_space()
    reports: list[dict[str, float]] = []
    settings = SearchSettings(epochs=2, order=order, max_skip=0, top_k=4, arch_lr=0.01)
    found = search(space, settings, tiny_digits(), report=reports.append, device="cpu")
    assert 1 <= len(found) <= 4 and len(hashes(space, found)) == len(found)
    for derived in found:
        assert space.contains(space.build(derived.config))
        assert "skip_connect" not in derived.config.values()
        assert 0.0 <= derived.score <= 1.0
    assert [r["epoch"] for r in reports] == [1, 2]
    assert [r["progress"] for r in reports] == [0.5, 1.0]
    for report in reports:
        assert {"supernet_train_loss", "supernet_val_accuracy", "skip_edges"} <= set(report)


def test_a_seed_gives_the_same_search_twice() -> None:
    space, settings = tiny_space(), SearchSettings(epochs=2, top_k=3, arch_lr=0.01, seed=5)
    first: list[dict[str, Any]] = []
    second: list[dict[str, Any]] = []
    a = search(space, settings, tiny_digits(), report=first.append, device="cpu")
    b = search(space, settings, tiny_digits(), report=second.append, device="cpu")
    assert a == b and first == second


def test_the_collapse_guard_stops_after_patience_and_derives_from_before_the_collapse() -> None:
    guard = Collapse(limit=1, patience=2, enabled=True)
    calm, collapsing = torch.zeros(2, 3), torch.ones(2, 3)
    guard.update(calm, skips=1)
    guard.update(collapsing, skips=2)
    assert not guard.stopped  # one epoch over the limit is not yet a collapse
    guard.update(collapsing, skips=3)
    assert guard.stopped and torch.equal(guard.alpha_to_derive(collapsing), calm)
    off = Collapse(limit=1, patience=1, enabled=False)
    off.update(collapsing, skips=3)
    assert not off.stopped and torch.equal(off.alpha_to_derive(collapsing), collapsing)
    unlimited = Collapse(limit=None, patience=1, enabled=True)
    unlimited.update(collapsing, skips=6)
    assert not unlimited.stopped


def test_an_early_stop_ends_the_search_and_says_so() -> None:
    # DARTS's collapse in small: skip_connect leads the edges from the first epoch (its weight
    # pays off before the convs have learned anything), so the guard stops the search.
    space = tiny_space(ops=("skip_connect", "nor_conv_3x3"))
    reports: list[dict[str, float]] = []
    settings = SearchSettings(epochs=6, max_skip=0, patience=2, arch_lr=0.05, seed=1)
    (found,) = search(space, settings, tiny_digits(), report=reports.append, device="cpu")
    assert [r["early_stopped"] for r in reports] == [0.0, 1.0]
    assert [r["progress"] for r in reports] == [1 / 6, 1.0]  # the stop completes the search
    assert all(r["skip_edges"] > 0 for r in reports)
    assert "skip_connect" not in found.config.values()


def test_darts_finds_the_op_a_synthetic_task_needs() -> None:
    """Only a conv can read the stripes (a 3x3 average pool sums each period away) and "none"
    reads nothing: trained each on its own, a conv cell scores about 0.9 and a pooled one 0.55.
    The derived cell must be the conv one."""
    space = CellSpace(num_nodes=2, ops=("none", "avg_pool_3x3", "nor_conv_3x3"),
                      input_shape=[1, 12, 12], stem_channels=4, cells_per_stage=1,
                      num_classes=2)  # fmt: skip
    data = Dataset(*stripes(400, seed=1), *stripes(200, seed=2))
    settings = SearchSettings(epochs=8, arch_lr=0.01, lr=0.05, batch_size=32, seed=0)
    (found,) = search(space, settings, data, device="cpu")
    assert found.config == {"1<-0": "nor_conv_3x3"}
    assert found.score > 0.75


def darts_like_space() -> CellSpace:
    """DARTS's cell in small: two cell inputs, each node picks two earlier nodes, the
    intermediate nodes concatenated."""
    return CellSpace(num_nodes=5, cell_inputs=2, inputs_per_node=2, cell_output="concat",
                     ops=("none", "skip_connect", "sep_conv_3x3", "max_pool_3x3"),
                     input_shape=[1, 8, 8], stem_channels=4, cells_per_stage=1,
                     num_classes=10)  # fmt: skip


@pytest.mark.parametrize("method", ["darts", "spos"])
def test_input_selection_cells_are_searched_too(method: str) -> None:
    space = darts_like_space()
    settings = SearchSettings(method=method, epochs=1, top_k=3, max_skip=1, arch_lr=0.01,
                              population=4, generations=1)  # fmt: skip
    found = search(space, settings, tiny_digits(), device="cpu")
    assert len(found) == 3 and len(hashes(space, found)) == 3
    for derived in found:
        assert space.contains(space.build(derived.config))
        picks = [derived.config[f"{j}.op{s}"] for j in (2, 3, 4) for s in (0, 1)]
        if method == "darts":  # a derived pick is never "none", and the skip limit holds
            assert "none" not in picks and picks.count("skip_connect") <= 1
