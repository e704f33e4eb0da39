"""Parzen estimators over a space's variables, TPE's densities l(x) and g(x).

A `Parzen` is a mixture with one component per observed config plus a prior component (weight
`PRIOR_WEIGHT`, as Optuna's `consider_prior`). Each component is a product of per-variable
kernels:

* a choice: the observed option's indicator smoothed by the prior (Optuna's categorical
  kernel), so that no option ever has zero density;
* a numeric range: a Gaussian on the variable's line (`_numeric`: log space for log ranges,
  ints widened by half a step) truncated to the line's ends. The bandwidth of the univariate
  estimator is Optuna's: the larger gap to the neighbouring observations, clipped below by the
  width over min(100, components) ("magic clip") and above by the width; the multivariate one
  uses Scott's rule as Optuna's multivariate TPE does: 0.2 * n^(-1/(d+4)) * width. An int's
  density is read at the point (not integrated over its step): l/g barely notices.

A variable an observation lacks (inactive there) takes the prior's kernel in that component.
Univariate (`multivariate=False`, Bergstra et al. 2011): every variable is its own mixture over
the observations that hold it, so variables are sampled and scored independently and the log
density is a sum. Multivariate: one mixture of product kernels, each sample takes every
variable from the same observation's kernel, which keeps what works together together.

Observation weights follow Optuna's default: equal up to 25 observations, then a linear ramp
from 1/n up to 1 over all but the newest 25, so old results fade.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from morphml.optimizers._numeric import Numeric, from_line, interval, to_line
from morphml.space.domains import Choice, Domain, Value

Array = npt.NDArray[np.float64]
Config = dict[str, Value]
PRIOR_WEIGHT = 1.0
FULL_WEIGHT_NEWEST = 25
MAGIC_CLIP_CAP = 100
SCOTT_FACTOR = 0.2
TRUNCATION_REDRAWS = 100


def observation_weights(n: int) -> Array:
    """Optuna's default: 1 for the newest 25, a ramp from 1/n for the older ones (oldest first)."""
    if n <= FULL_WEIGHT_NEWEST:
        return np.ones(n)
    ramp = np.linspace(1.0 / n, 1.0, num=n - FULL_WEIGHT_NEWEST)
    return np.concatenate([ramp, np.ones(FULL_WEIGHT_NEWEST)])


@dataclass
class _Choices:
    """Per component, a probability per option (the last row is the prior's: uniform)."""

    options: tuple[Value, ...]
    probabilities: Array  # (components, options)

    def sample(self, components: npt.NDArray[np.int64], rng: np.random.Generator) -> list[Value]:
        """One option per entry of `components`, from that component's probabilities."""
        cumulative = np.cumsum(self.probabilities[components], axis=1)
        draws = rng.random(len(components)) * cumulative[:, -1]
        codes = np.minimum((cumulative < draws[:, None]).sum(axis=1), len(self.options) - 1)
        return [self.options[code] for code in codes.tolist()]

    def log_density(self, values: Sequence[Value]) -> Array:
        """(candidates, components); a value not among the options gets the smallest density."""
        codes = _codes(self.options, values)
        columns = np.where(
            (codes >= 0)[:, None],
            self.probabilities.T[np.maximum(codes, 0)],
            self.probabilities.min(axis=1)[None, :],
        )
        return np.asarray(np.log(columns), dtype=np.float64)


@dataclass
class _Gaussians:
    """Per component, a Gaussian on the variable's line truncated to [low, high]."""

    domain: Numeric
    mus: Array
    sigmas: Array

    def sample(self, components: npt.NDArray[np.int64], rng: np.random.Generator) -> list[Value]:
        """One value per entry of `components`: Gaussian draws redrawn until inside the line
        (each is accepted with probability >= 0.34, as sigma <= width), else clipped."""
        low, high = interval(self.domain)
        mus, sigmas = self.mus[components], self.sigmas[components]
        points = rng.normal(mus, sigmas)
        for _ in range(TRUNCATION_REDRAWS):
            outside = (points < low) | (points > high)
            if not outside.any():
                break
            points[outside] = rng.normal(mus[outside], sigmas[outside])
        return [from_line(self.domain, point) for point in points.tolist()]

    def log_density(self, values: Sequence[Value]) -> Array:
        low, high = interval(self.domain)
        points = np.array([to_line(self.domain, value) for value in values])[:, None]
        if high == low:  # a one-point float range: every value is that point
            return np.zeros((len(values), len(self.mus)))
        z = (points - self.mus[None, :]) / self.sigmas[None, :]
        mass = np.array(
            [
                _phi((high - m) / s) - _phi((low - m) / s)
                for m, s in zip(self.mus, self.sigmas, strict=True)
            ]
        )
        log_norm = (
            np.log(self.sigmas) + 0.5 * math.log(2 * math.pi) + np.log(np.maximum(mass, 1e-300))
        )
        return np.asarray(-0.5 * z**2 - log_norm[None, :], dtype=np.float64)


Kernel = _Choices | _Gaussians


class Parzen:
    """The weighted mixture fitted to `configs` (oldest first, with their `weights`)."""

    def __init__(
        self,
        domains: Sequence[tuple[str, Domain]],
        configs: Sequence[Config],
        weights: Array,
        multivariate: bool,
    ) -> None:
        self.multivariate = multivariate
        self.kernels: dict[str, Kernel] = {}
        self.log_weights: dict[str, Array] = {}  # per variable; one shared row if multivariate
        shared = np.append(weights, PRIOR_WEIGHT)
        for key, domain in domains:
            active = np.array([key in config for config in configs], dtype=bool)
            values = [config.get(key) for config in configs]
            self.kernels[key] = _kernel(domain, values, active, multivariate, len(domains))
            mixture = (
                shared if multivariate else np.append(np.where(active, weights, 0.0), PRIOR_WEIGHT)
            )
            self.log_weights[key] = _log_normalised(mixture)
        self.shared_log_weights = _log_normalised(shared)

    def sample(self, count: int, rng: np.random.Generator) -> list[Config]:
        """`count` configs with every variable set (the space ignores the inactive ones)."""
        shared = (
            self._components(self.shared_log_weights, count, rng) if self.multivariate else None
        )
        configs: list[Config] = [{} for _ in range(count)]
        for key, kernel in self.kernels.items():
            if shared is not None:
                components = shared
            else:
                components = self._components(self.log_weights[key], count, rng)
            for config, value in zip(configs, kernel.sample(components, rng), strict=True):
                config[key] = value
        return configs

    def _components(
        self, log_weights: Array, count: int, rng: np.random.Generator
    ) -> npt.NDArray[np.int64]:
        probabilities = np.exp(log_weights)
        return np.asarray(
            rng.choice(len(probabilities), size=count, p=probabilities / probabilities.sum()),
            dtype=np.int64,
        )

    def log_density(self, configs: Sequence[Config]) -> Array:
        """Per config, the log density of the variables it holds (its active ones)."""
        if self.multivariate:
            total = np.zeros((len(configs), len(self.shared_log_weights)))
            for key, kernel in self.kernels.items():
                total += self._masked(key, kernel, configs)
            return _logsumexp(total + self.shared_log_weights[None, :])
        density = np.zeros(len(configs))
        for key, kernel in self.kernels.items():
            per_component = self._masked(key, kernel, configs) + self.log_weights[key][None, :]
            held = np.array([key in config for config in configs], dtype=bool)
            density += np.where(held, _logsumexp(per_component), 0.0)
        return density

    def _masked(self, key: str, kernel: Kernel, configs: Sequence[Config]) -> Array:
        held = [config for config in configs if key in config]
        rows = np.zeros((len(configs), len(self.log_weights[key])))
        if held:
            index = [i for i, config in enumerate(configs) if key in config]
            rows[index] = kernel.log_density([config[key] for config in held])
        return rows


def _kernel(
    domain: Domain,
    values: list[Value],
    active: npt.NDArray[np.bool_],
    multivariate: bool,
    dims: int,
) -> Kernel:
    if isinstance(domain, Choice):
        return _choices(domain, values, active)
    return _gaussians(domain, values, active, multivariate, dims)


def _choices(domain: Choice, values: list[Value], active: npt.NDArray[np.bool_]) -> _Choices:
    size = len(domain.options)
    smoothing = PRIOR_WEIGHT / (int(active.sum()) + 1)
    probabilities = np.full((len(values) + 1, size), 1.0 / size)  # inactive and prior: uniform
    codes = np.where(active, _codes(domain.options, values), -1)
    (rows,) = np.nonzero(codes >= 0)
    probabilities[rows] = smoothing / (1 + size * smoothing)
    probabilities[rows, codes[rows]] += 1 / (1 + size * smoothing)
    return _Choices(domain.options, probabilities)


def _gaussians(
    domain: Numeric,
    values: list[Value],
    active: npt.NDArray[np.bool_],
    multivariate: bool,
    dims: int,
) -> _Gaussians:
    low, high = interval(domain)
    width, centre = high - low, (low + high) / 2
    mus = np.array(
        [to_line(domain, v) if a else centre for v, a in zip(values, active, strict=True)]
    )
    mus = np.append(mus, centre)
    held = int(active.sum())
    floor = width / min(MAGIC_CLIP_CAP, held + 1)
    if multivariate:
        sigmas = np.full(len(mus), SCOTT_FACTOR * max(held, 1) ** (-1.0 / (dims + 4)) * width)
    else:
        sigmas = np.full(len(mus), width)
        sigmas[: len(values)][active] = _neighbour_gaps(mus[: len(values)][active], low, high)
    sigmas = np.clip(sigmas, floor, width)
    sigmas[~np.append(active, False)] = width  # inactive components and the prior: wide
    return _Gaussians(domain, mus, np.maximum(sigmas, 1e-12))


def _neighbour_gaps(mus: Array, low: float, high: float) -> Array:
    """Optuna's univariate bandwidth: the larger gap to a neighbour among the sorted
    observations; the outermost ones look only inwards (the line's ends are no observations)."""
    if len(mus) == 0:
        return mus
    order = np.argsort(mus, kind="stable")
    padded = np.concatenate([[low], mus[order], [high]])
    gaps = np.maximum(padded[1:-1] - padded[:-2], padded[2:] - padded[1:-1])
    if len(mus) >= 2:
        gaps[0] = padded[2] - padded[1]
        gaps[-1] = padded[-2] - padded[-3]
    sigmas = np.empty(len(mus))
    sigmas[order] = gaps
    return sigmas


def _codes(options: tuple[Value, ...], values: Sequence[Value]) -> npt.NDArray[np.int64]:
    """Each value's index among the options (-1: none), by equality as `Choice.contains` has
    it; lists compare as tuples (JSON turns an option such as a kernel shape into a list)."""
    lookup: dict[Value, int] = {}
    for code, option in enumerate(options):
        lookup.setdefault(_hashable(option), code)
    return np.array([lookup.get(_hashable(value), -1) for value in values], dtype=np.int64)


def _hashable(value: Value) -> Value:
    return tuple(_hashable(v) for v in value) if isinstance(value, list | tuple) else value


def _phi(z: float) -> float:
    return 0.5 * (1.0 + math.erf(z / math.sqrt(2.0)))


def _log_normalised(weights: Array) -> Array:
    with np.errstate(divide="ignore"):
        return np.asarray(np.log(weights / weights.sum()), dtype=np.float64)


def _logsumexp(values: Array) -> Array:
    top = values.max(axis=1)
    return np.asarray(top + np.log(np.exp(values - top[:, None]).sum(axis=1)), dtype=np.float64)
