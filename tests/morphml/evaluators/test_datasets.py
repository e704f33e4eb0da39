"""Offline datasets: digits, .npz files, subsets and reshaping."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from morphml.evaluators import EvaluatorError
from morphml.evaluators.datasets import load_dataset


def test_digits_is_a_fixed_80_20_split_of_8x8_images() -> None:
    data = load_dataset("digits")
    assert data.x_train.shape == (1437, 1, 8, 8) and data.x_val.shape == (360, 1, 8, 8)
    assert data.x_train.dtype == np.float32 and 0 <= data.x_train.min() and data.x_train.max() <= 1
    assert data.num_classes == 10


def test_subsets_are_seeded() -> None:
    data = load_dataset("digits")
    a, b = data.subset(100, 50, seed=1), data.subset(100, 50, seed=1)
    assert len(a.y_train) == 100 and len(a.y_val) == 50
    assert np.array_equal(a.y_train, b.y_train)
    assert not np.array_equal(a.y_train, data.subset(100, 50, seed=2).y_train)


def test_a_user_npz_file(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    path = tmp_path / "data.npz"
    np.savez(path, x_train=rng.random((20, 12)), y_train=rng.integers(0, 3, 20),
             x_val=rng.random((5, 12)), y_val=rng.integers(0, 3, 5))  # fmt: skip
    data = load_dataset(str(path)).fit_to_input((3, 2, 2))
    assert data.x_train.shape == (20, 3, 2, 2) and data.x_val.dtype == np.float32


def test_bad_datasets_name_the_field(tmp_path: Path) -> None:
    with pytest.raises(
        EvaluatorError, match=r"evaluator\.params\.dataset: unknown dataset 'cifar'"
    ):
        load_dataset("cifar")
    with pytest.raises(EvaluatorError, match="no such file"):
        load_dataset(str(tmp_path / "missing.npz"))
    np.savez(tmp_path / "partial.npz", x_train=np.zeros((2, 2)))
    with pytest.raises(EvaluatorError, match="lacks arrays"):
        load_dataset(str(tmp_path / "partial.npz"))
