"""A small local search: sample architectures, build them, score them, export the best.

This is what `morphml demo --local` runs: one process, no server. It exercises the whole core
(space -> optimizer -> architecture -> torch module -> evaluator -> exported source).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from morphml import Architecture, Layer, SearchSpace
from morphml.evaluators import get_evaluator
from morphml.optimizers import Candidate, Outcome, make_optimizer


def demo_space() -> SearchSpace:
    """A CNN space for 28x28 grey images, sized so one candidate trains in seconds on a CPU.

    972 architectures whose MNIST accuracy after 2 short epochs spans ~0.89 to ~0.97, so the
    search has something to find.
    """
    return SearchSpace("mnist-cnn").add_layers(
        Layer.input(shape=(1, 28, 28)),
        Layer.conv2d(filters=[8, 16, 32], kernel_size=[3, 5]),
        Layer.batchnorm(optional=True),
        Layer.activation(["relu", "gelu", "silu"]),
        Layer.maxpool(pool_size=2),
        Layer.conv2d(filters=[16, 32], kernel_size=3, optional=True),
        Layer.relu(),
        Layer.maxpool(pool_size=2),
        Layer.flatten(),
        Layer.dense(units=[32, 64, 128]),
        Layer.dropout(rate=[0.0, 0.25], optional=True),
        Layer.output(units=10),
    )


@dataclass
class Scored:
    architecture: Architecture
    metrics: dict[str, float]
    seconds: float

    def row(self) -> dict[str, Any]:
        """Everything about one evaluation, the candidate included (for results.json/.csv)."""
        a = self.architecture
        return {
            "hash": a.hash[:12],
            "params": a.num_params,
            "mflops": round(a.flops / 1e6, 3),
            **self.metrics,
            "seconds": self.seconds,
            "candidate_hash": a.hash,
            "config": a.config,
            "architecture": a.to_dict(),
        }


# What the local leaderboard shows: what fits 80 columns (the other scores are in results.json).
LOCAL_COLUMNS = ["rank", "hash", "params", "mflops", "naswot", "synflow", "seconds"]


def local_rows(found: list[Scored]) -> list[dict[str, Any]]:
    return [{"rank": rank, **s.row()} for rank, s in enumerate(found, start=1)]


def run_local_search(
    evaluations: int,
    evaluator: str,
    evaluator_params: dict[str, Any],
    metric: str,
    seed: int,
) -> list[Scored]:
    """Ask/tell loop in this process; returns every evaluation, best first."""
    space = demo_space()
    objectives = [{"metric": metric, "direction": "maximize"}]
    optimizer = make_optimizer("random", space, objectives=objectives, seed=seed)
    evaluate = get_evaluator(evaluator)
    results: list[Scored] = []
    for _ in range(evaluations):
        asked = optimizer.ask(1)
        if not asked:
            break
        results.append(_score(asked[0], evaluate, evaluator_params, optimizer.tell))
    return sorted(results, key=lambda r: r.metrics.get(metric, float("-inf")), reverse=True)


def _score(candidate: Candidate, evaluate: Any, params: dict[str, Any], tell: Any) -> Scored:
    start = time.perf_counter()
    metrics = evaluate(candidate.architecture, candidate.budget, params, lambda m: None)
    tell(candidate, metrics, Outcome.COMPLETED)
    return Scored(candidate.architecture, metrics, time.perf_counter() - start)


UNTRAINED_NOTE = (
    "# Untrained: the architecture only; the weights of its evaluation were not kept.\n"
    "# BestNet() builds it with fresh weights: train it on your data. `python best_model.py`\n"
    "# checks that it runs.\n"
)


TRAINED_NOTE = (
    "# Its trained weights are in best_model.pt beside this file (the state_dict the worker\n"
    "# trained): net = BestNet(); net.load_state_dict(torch.load('best_model.pt',\n"
    "# weights_only=True)); net.eval(). `python best_model.py` checks that it runs.\n"
)


def write_best(best: Architecture, out_dir: Path, trained: bool = False) -> Path:
    """`best_model.py` (standalone PyTorch source of the architecture; `trained`: its weights
    are in `best_model.pt`, and the note says how to load them) and `best_architecture.json`
    (`Architecture.from_json` reads it back)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "best_model.py"
    note = TRAINED_NOTE if trained else UNTRAINED_NOTE
    path.write_text(note + best.to_pytorch_source("BestNet"))
    (out_dir / "best_architecture.json").write_text(best.to_json() + "\n")
    return path
