"""Pruners: the median rule and ASHA's rung rule, built from an experiment spec."""

from __future__ import annotations

import pytest

from morphml.optimizers import ASHAPruner, MedianPruner, OptimizerError, make_pruner
from morphml.optimizers.pruners import NoPruner

CURVES = {f"t{i}": [10.0 * i + step for step in range(9)] for i in range(1, 7)}  # t6 is the best


def test_median_rule_stops_below_median_after_warmup() -> None:
    pruner = MedianPruner(warmup_steps=1, min_tasks=3)
    assert not pruner.should_stop("new", [0.0], CURVES)  # still warming up
    assert pruner.should_stop("new", [0.0, 1.0], CURVES)
    assert not pruner.should_stop("t5", CURVES["t5"][:2], CURVES)  # itself is left out
    assert not pruner.should_stop("new", [0.0, 1.0], {"t1": CURVES["t1"]})  # too few peers


def test_median_rule_minimising() -> None:
    pruner = MedianPruner(direction="minimize", min_tasks=3)
    assert not pruner.should_stop("new", [0.0, 1.0], CURVES)
    assert pruner.should_stop("new", [99.0, 99.0], CURVES)


def test_asha_rule_keeps_the_top_third_at_each_rung() -> None:
    pruner = ASHAPruner(min_step=1, eta=3)
    assert not pruner.should_stop("t6", CURVES["t6"][:3], CURVES)
    assert not pruner.should_stop("t5", CURVES["t5"][:3], CURVES)  # top 2 of 6
    assert pruner.should_stop("t4", CURVES["t4"][:3], CURVES)
    # Between rungs the last rung reached decides (heartbeats may skip steps).
    assert pruner.should_stop("t4", CURVES["t4"][:2], CURVES)
    fading = [99.0, 0.0, 0.0]
    assert not pruner.should_stop("new", fading[:2], CURVES)
    assert pruner.should_stop("new", fading, CURVES)
    assert not pruner.should_stop("t1", CURVES["t1"][:3], {"t2": CURVES["t2"]})  # too few peers


def test_make_pruner_from_spec() -> None:
    objectives = [{"metric": "loss", "direction": "minimize"}]
    pruner = make_pruner({"name": "median", "params": {"min_tasks": 2}}, objectives)
    assert isinstance(pruner, MedianPruner) and pruner.sign == -1.0
    assert isinstance(make_pruner({"name": "asha"}), ASHAPruner)
    assert isinstance(make_pruner(None), NoPruner)
    assert isinstance(make_pruner({"name": "none"}, objectives), NoPruner)
    with pytest.raises(OptimizerError, match="unknown pruner"):
        make_pruner({"name": "hyperopt"})
    with pytest.raises(OptimizerError, match="eta"):
        make_pruner({"name": "asha", "params": {"eta": 1}})
    with pytest.raises(OptimizerError, match=r"pruner\.params"):
        make_pruner({"name": "median", "params": {"patience": 3}})
