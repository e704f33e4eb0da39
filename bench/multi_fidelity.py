"""Multi-fidelity search on NAS-Bench-201 under a MODELLED learning curve (bench/fidelity_model.py).

Does spending epochs on short trainings pay? For every method and seed, search until
`--epochs` training epochs are spent and record, after each evaluation, the TRUE (table mean)
validation accuracy of the incumbent. The incumbent is chosen from observed values only, as a
user would: the best observation at the LARGEST budget evaluated so far (a tie keeps the earlier
one), so a 7-epoch lucky draw never beats a 200-epoch result. Observations below 200 epochs come
from the fidelity model, not from measured curves (the tables hold final values only); its
Spearman correlations between budgets are printed with every result.

Methods: ASHA and Hyperband with random proposals (rungs 200/27, 200/9, 200/3, 200 epochs: eta 3),
the BOHB-style pair (the same with sampler="surrogate": new architectures by the GP's expected
improvement on the highest rung with 10 results), and two full-fidelity searches at 200 epochs an
evaluation: Optuna's TPE and MorphML's default (SurrogateSearch). Cost of an evaluation is its
budget in epochs; a promotion continues the lower rung's weights, so it costs only the difference
("warm", the main table). The "cold" table counts every evaluation at its full budget, as if each
promotion trained from scratch. Sequential only: ask 1, tell 1.

    .venv/bin/python bench/multi_fidelity.py --first-seed 20 --seeds 50 --out /tmp/mf.json
    .venv/bin/python bench/multi_fidelity.py --smoke     # seconds; tests/bench runs it
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import statistics
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bench.fidelity_model import MAX_EPOCHS, observe, spearman
from morphml.architecture import Architecture
from morphml.evaluators.tabular import DATASETS, EDGES, true_accuracy
from morphml.optimizers import Candidate, make_optimizer
from morphml.space.cell import NB201_OPS, CellSpace

ETA = 3
MIN_EPOCHS = MAX_EPOCHS / ETA**3  # four rungs, about 7.4 epochs at the bottom
# 5, 10, 25 and 50 full trainings (10: the GP's random start; 25, 50: search_quality's
# checkpoints). Not 100: ASHA's ~650 evaluations per 10k epochs already make a seed take seconds.
CHECKPOINTS = (1000, 2000, 5000, 10000)


def bench_space() -> CellSpace:
    """NAS-Bench-201's cell (the same 6 edges and 5 ops; equivalent cells share a hash as in the
    full network) on a smaller skeleton: building the full 32x32 network was most of the run
    time, and the table never looks past the cell."""
    return CellSpace("nb201-bench", input_shape=(3, 8, 8), stem_channels=4, cells_per_stage=1)


MULTI: dict[str, tuple[str, dict[str, Any]]] = {
    "asha": ("asha", {}),
    "hyperband": ("hyperband", {}),
    "bohb_asha": ("asha", {"sampler": "surrogate"}),
    "bohb": ("bohb", {}),
}
FULL = ("tpe_full", "default_full")
METHODS = (*MULTI, *FULL)
BASELINE = "tpe_full"
SMOKE = {"seeds": 1, "datasets": "cifar10", "epochs": 1000}


@dataclass
class Incumbent:
    """Best observation at the largest budget seen so far; its true accuracy is looked up only
    when it changes (the harness knows the truth, a user would not)."""

    budget: float = -math.inf
    observed: float = -math.inf
    truth: float = 0.0

    def update(self, budget: float, observed: float, truth: Callable[[], float]) -> float:
        if budget > self.budget or (budget == self.budget and observed > self.observed):
            self.budget, self.observed, self.truth = budget, observed, truth()
        return self.truth


@dataclass
class Curve:
    """After each evaluation: epochs spent counted warm and cold, and the incumbent's truth."""

    warm: list[float] = field(default_factory=list)
    cold: list[float] = field(default_factory=list)
    truth: list[float] = field(default_factory=list)

    def add(self, budget: float, promoted_from: float, truth: float) -> None:
        self.warm.append((self.warm[-1] if self.warm else 0.0) + budget - promoted_from)
        self.cold.append((self.cold[-1] if self.cold else 0.0) + budget)
        self.truth.append(truth)

    def at(self, epochs: float, cost: str) -> float:
        """The incumbent's truth once `epochs` are spent (evaluations ending later don't count)."""
        spent = self.warm if cost == "warm" else self.cold
        done = [t for s, t in zip(spent, self.truth, strict=True) if s <= epochs]
        return done[-1] if done else math.nan


def run_multi(method: str, seed: int, dataset: str, epochs: float) -> Curve:
    name, params = MULTI[method]
    optimizer = make_optimizer(
        name,
        bench_space(),
        seed=seed,
        min_budget=MIN_EPOCHS,
        max_budget=MAX_EPOCHS,
        eta=ETA,
        **params,
    )
    curve, best = Curve(), Incumbent()
    while not curve.warm or curve.warm[-1] < epochs:
        asked: list[Candidate] = optimizer.ask(1)
        if not asked:
            break  # the space is exhausted
        candidate = asked[0]
        budget = float(candidate.budget or MAX_EPOCHS)
        value = observe(candidate.architecture, budget, seed, dataset)
        optimizer.tell(candidate, {"val_accuracy": value})
        truth = best.update(budget, value, _truth(candidate.architecture, dataset))
        curve.add(budget, float(candidate.meta.get("promoted_from", 0.0)), truth)
    return curve


def run_full(method: str, seed: int, dataset: str, epochs: float) -> Curve:
    propose, tell = _optuna(seed) if method == "tpe_full" else _default(seed)
    curve, best = Curve(), Incumbent()
    while not curve.warm or curve.warm[-1] < epochs:
        architecture = propose()
        value = observe(architecture, MAX_EPOCHS, seed, dataset)
        tell(value)
        truth = best.update(MAX_EPOCHS, value, _truth(architecture, dataset))
        curve.add(MAX_EPOCHS, 0.0, truth)
    return curve


Proposer = tuple[Callable[[], Architecture], Callable[[float], None]]


def _optuna(seed: int) -> Proposer:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
    space, trials = bench_space(), []

    def propose() -> Architecture:
        trials.append(study.ask())
        ops = {
            edge: trials[-1].suggest_categorical(f"Op{i}", NB201_OPS)
            for i, edge in enumerate(EDGES)
        }
        return space.build(ops)

    def tell(value: float) -> None:
        study.tell(trials[-1], value)

    return propose, tell


def _default(seed: int) -> Proposer:
    optimizer = make_optimizer("default", bench_space(), seed=seed)
    asked: list[Candidate] = []

    def propose() -> Architecture:
        asked.append(optimizer.ask(1)[0])
        return asked[-1].architecture

    return propose, lambda value: optimizer.tell(asked[-1], {"val_accuracy": value})


def _truth(architecture: Architecture, dataset: str) -> Callable[[], float]:
    return lambda: true_accuracy(architecture, dataset)


def run_one(method: str, seed: int, dataset: str, epochs: float) -> Curve:
    runner = run_multi if method in MULTI else run_full
    return runner(method, seed, dataset, epochs)


def mean_se(values: list[float]) -> tuple[float, float]:
    mean = statistics.fmean(values)
    se = statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else math.nan
    return mean, se


def table(curves: dict[str, list[Curve]], checkpoints: list[int], cost: str) -> str:
    """Mean ± standard error of the incumbent's true accuracy (percent) at each checkpoint."""
    lines = ["| method | " + " | ".join(f"@{c} ep" for c in checkpoints) + " |"]
    lines.append("|---|" + "---|" * len(checkpoints))
    for method, runs in curves.items():
        cells = [mean_se([100 * run.at(c, cost) for run in runs]) for c in checkpoints]
        lines.append(f"| {method} | " + " | ".join(f"{m:.2f} ± {s:.2f}" for m, s in cells) + " |")
    return "\n".join(lines)


def paired(curves: dict[str, list[Curve]], checkpoints: list[int], cost: str) -> str:
    """Per-seed differences against BASELINE (percentage points): mean ± SE and mean / SE."""
    lines = [f"| method - {BASELINE} | " + " | ".join(f"@{c} ep" for c in checkpoints) + " |"]
    lines.append("|---|" + "---|" * len(checkpoints))
    for method, runs in curves.items():
        if method == BASELINE or BASELINE not in curves:
            continue
        cells = []
        for c in checkpoints:
            diffs = [
                100 * (run.at(c, cost) - base.at(c, cost))
                for run, base in zip(runs, curves[BASELINE], strict=True)
            ]
            mean, se = mean_se(diffs)
            z = mean / se if se else math.nan
            cells.append(f"{mean:+.2f} ± {se:.2f} ({z:+.1f} SE)")
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def model_correlations(dataset: str, seed: int, full: bool) -> str:
    """The fidelity model's Spearman correlations with 200 epochs, all cells and best 10%."""
    lows = [12.0] + ([MIN_EPOCHS * ETA**k for k in range(3)] if full else [])
    parts = []
    for low in lows:
        whole = spearman(low, MAX_EPOCHS, seed, dataset)
        top = spearman(low, MAX_EPOCHS, seed, dataset, top=0.1) if full else math.nan
        parts.append(f"{low:.1f} vs 200 ep: {whole:.2f} (best 10%: {top:.2f})")
    return f"model Spearman, {dataset}, seed {seed}: " + "; ".join(parts)


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--first-seed", type=int, default=20, help="0-19 are for tuning")
    parser.add_argument("--seeds", type=positive_int, default=50)
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--epochs", type=positive_int, default=CHECKPOINTS[-1])
    parser.add_argument("--out", help="write the raw curves as JSON here (after every seed)")
    parser.add_argument("--report", help="print the tables of a JSON that --out wrote, and stop")
    parser.add_argument("--smoke", action="store_true", help="1 seed, cifar10, 1000 epochs")
    args = parser.parse_args(argv)
    if args.smoke:
        vars(args).update(SMOKE)
    for name, known in (("datasets", DATASETS), ("methods", METHODS)):
        unknown = [item for item in getattr(args, name).split(",") if item not in known]
        if unknown:
            parser.error(f"--{name}: unknown {unknown}; known: {list(known)}")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    checkpoints = [c for c in CHECKPOINTS if c <= args.epochs] or [args.epochs]
    datasets, methods = args.datasets.split(","), args.methods.split(",")
    if args.report:
        with open(args.report) as handle:
            raw = json.load(handle)
    else:
        raw = run_all(args, datasets, methods)
    report(raw, checkpoints, full=not args.smoke)


def run_all(args: argparse.Namespace, datasets: list[str], methods: list[str]) -> dict[str, Any]:
    """Seeds outermost, so that a run stopped early (see --report) still holds every table and
    method over the same seeds. The JSON is rewritten after every seed."""
    raw: dict[str, Any] = {"first_seed": args.first_seed, "curves": {d: {} for d in datasets}}
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        for dataset in datasets:
            for method in methods:
                curve = vars(run_one(method, seed, dataset, args.epochs))
                raw["curves"][dataset].setdefault(method, []).append(curve)
        print(f"seed {seed} done; load average {os.getloadavg()}", file=sys.stderr, flush=True)
        if args.out:
            with open(args.out, "w") as handle:
                json.dump(raw, handle)
    return raw


def report(raw: dict[str, Any], checkpoints: list[int], full: bool) -> None:
    first = raw["first_seed"]
    for dataset, by_method in raw["curves"].items():
        curves = {m: [Curve(**c) for c in runs] for m, runs in by_method.items()}
        count = min(len(runs) for runs in curves.values())
        curves = {m: runs[:count] for m, runs in curves.items()}
        print(
            f"\n## {dataset}: seeds {first}-{first + count - 1}, "
            f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC; "
            "low-fidelity values are a MODEL (bench/fidelity_model.py)"
        )
        print(model_correlations(dataset, first, full))
        for cost in ("warm", "cold"):
            print(f"\n{cost} cost: incumbent's true accuracy %, mean ± SE over {count} seeds")
            print(table(curves, checkpoints, cost))
            print(paired(curves, checkpoints, cost))
    print(f"\nload average {os.getloadavg()}", flush=True)


if __name__ == "__main__":
    main()
