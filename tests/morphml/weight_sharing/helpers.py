"""A tiny space and data for the weight-sharing tests: each search takes a second or two."""

from __future__ import annotations

import numpy as np

from morphml.evaluators.datasets import Dataset, load_dataset
from morphml.space.cell import CellSpace

TINY_OPS = ("none", "skip_connect", "nor_conv_3x3")


def tiny_space(ops: tuple[str, ...] = TINY_OPS, num_nodes: int = 3) -> CellSpace:
    return CellSpace(
        num_nodes=num_nodes, ops=ops, input_shape=[1, 8, 8], stem_channels=4,
        cells_per_stage=1, num_classes=10,
    )  # fmt: skip


def tiny_digits() -> Dataset:
    return load_dataset("digits").subset(200, 100, seed=0)


def stripes(n: int, seed: int, noise: float = 4.0, size: int = 12) -> tuple[np.ndarray, np.ndarray]:
    """Vertical (class 0) or horizontal (class 1) stripes of period 3 and zero mean, in heavy
    noise. A 3x3 average pool sums each period to zero, so a pooled cell sees (away from the
    borders) only the noise: a conv is the op that can tell the classes apart."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    wave = np.array([2.0, -1.0, -1.0])
    phase = rng.integers(0, 3, n)
    sign = rng.choice([-1.0, 1.0], n)
    line = wave[(np.arange(size)[None, :] + phase[:, None]) % 3] * sign[:, None]
    vertical = np.repeat(line[:, None, :], size, axis=1)
    images = np.where(y[:, None, None] == 1, vertical.transpose(0, 2, 1), vertical)
    images = images + noise * rng.standard_normal((n, size, size))
    return images[:, None].astype(np.float32), y.astype(np.int64)
