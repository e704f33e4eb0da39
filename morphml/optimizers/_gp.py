"""A small Gaussian process (RBF kernel) in numpy, for surrogate-model optimizers.

Hyperparameters (length scale, noise) are chosen by marginal likelihood over a fixed grid, which
is cheap at the few hundred points an architecture search sees and keeps the fit deterministic:
the same data always give the same model, so a restored optimizer proposes what the original would.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float64]

LENGTH_SCALES = (0.75, 1.0, 1.5, 2.0, 3.0)
NOISES = (0.02, 0.1, 0.3)


class GaussianProcess:
    def __init__(self, length_scale: float = 1.5, noise: float = 0.1) -> None:
        self.length_scale, self.noise = length_scale, noise
        self.x = np.zeros((0, 0))
        self.alpha = np.zeros(0)
        self.cholesky = np.zeros((0, 0))
        self.mean, self.scale = 0.0, 1.0

    def fit(self, x: Array, y: Array, tune: bool = False) -> GaussianProcess:
        self.mean = float(y.mean())
        self.scale = float(y.std()) or 1.0
        target = (y - self.mean) / self.scale
        if tune:
            grid = [(ls, nz) for ls in LENGTH_SCALES for nz in NOISES]
            self.length_scale, self.noise = max(grid, key=lambda p: _log_likelihood(x, target, *p))
        self.x = x
        self.cholesky = _cholesky(_kernel(x, x, self.length_scale), self.noise)
        self.alpha = _solve(self.cholesky, target)
        return self

    def predict(self, x: Array) -> tuple[Array, Array]:
        """Posterior mean and standard deviation, in the units of the fitted y."""
        cross = _kernel(x, self.x, self.length_scale)
        mean = cross @ self.alpha
        v = np.linalg.solve(self.cholesky, cross.T)  # triangular; n is small
        variance = np.clip(1.0 - (v * v).sum(axis=0), 1e-12, None)
        return mean * self.scale + self.mean, np.sqrt(variance) * self.scale


def expected_improvement(mean: Array, std: Array, best: float) -> Array:
    z = (mean - best) / std
    cdf = 0.5 * (1.0 + np.vectorize(math.erf)(z / math.sqrt(2.0)))
    pdf = np.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)
    return np.asarray((mean - best) * cdf + std * pdf)


def _kernel(a: Array, b: Array, length_scale: float) -> Array:
    distances = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    return np.asarray(np.exp(-np.clip(distances, 0.0, None) / (2.0 * length_scale**2)))


def _cholesky(gram: Array, noise: float) -> Array:
    return np.asarray(np.linalg.cholesky(gram + (noise + 1e-8) * np.eye(len(gram))))


def _solve(cholesky: Array, y: Array) -> Array:
    return np.asarray(np.linalg.solve(cholesky.T, np.linalg.solve(cholesky, y)))


def _log_likelihood(x: Array, y: Array, length_scale: float, noise: float) -> float:
    cholesky = _cholesky(_kernel(x, x, length_scale), noise)
    alpha = _solve(cholesky, y)
    return float(-0.5 * y @ alpha - np.log(np.diag(cholesky)).sum())
