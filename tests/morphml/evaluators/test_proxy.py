"""The `proxy` evaluator: finite zero-cost scores for every kind of space, deterministic."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from morphml.evaluators import get_evaluator
from tests.morphml.spaces import all_spaces

SCORES = {"synflow", "naswot", "jacob_cov", "grad_norm", "num_params", "flops"}


@pytest.mark.parametrize("name", sorted(all_spaces()))
def test_scores_are_finite_for_every_space(name: str, tmp_path: Path) -> None:
    architecture = all_spaces()[name].sample(1)
    rng = np.random.default_rng(0)
    shape, classes = architecture.input_shape, architecture.output_shape[0]
    path = tmp_path / "data.npz"
    np.savez(path, x_train=rng.random((16, *shape)), y_train=rng.integers(0, classes, 16),
             x_val=rng.random((2, *shape)), y_val=rng.integers(0, classes, 2))  # fmt: skip
    scores = get_evaluator("proxy")(
        architecture, None, {"dataset": str(path), "batch_size": 8}, print
    )
    assert set(scores) == SCORES
    assert all(math.isfinite(value) for value in scores.values())
    assert scores["num_params"] == architecture.num_params


def test_scores_are_deterministic_on_digits() -> None:
    from tests.morphml.evaluators.test_train import small_cnn

    first = get_evaluator("proxy")(small_cnn(), None, {"batch_size": 16}, print)
    second = get_evaluator("proxy")(small_cnn(), None, {"batch_size": 16}, print)
    assert first == second and first["synflow"] > 0
