"""Search quality on NAS-Bench-201: MorphML's optimizers against Optuna's TPE and random sampler.

For every method and seed, run `--evals` evaluations on the tabular benchmark (noisy per-seed
validation accuracy, as the benchmark defines) and record the TRUE mean validation accuracy of
the incumbent (the best observed candidate) after 25/50/100/200 evaluations; the evaluator
reports fractions, the table prints percent as the benchmark's papers do. Two modes:
sequential (ask 1, tell 1) and batch (ask 8, tell them back in a shuffled order). Also times one
ask+tell at 1,000 tells for every MorphML optimizer.

    .venv/bin/python bench/search_quality.py --seeds 20 --jobs 2 --out bench/search_quality.json
    .venv/bin/python bench/search_quality.py --smoke     # seconds; tests/bench runs it
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import random
import statistics
import time
from collections.abc import Callable
from functools import partial

from morphml.architecture import Architecture
from morphml.evaluators.tabular import EDGES, evaluate, true_accuracy
from morphml.optimizers import OPTIMIZERS, Candidate, make_optimizer
from morphml.space.cell import NB201_OPS, CellSpace

CHECKPOINTS = (25, 50, 100, 200)
BATCH = 8
OPTUNA = ("optuna_tpe", "optuna_random")
# Multi-fidelity and multi-objective optimizers have nothing to gain on a one-fidelity,
# one-objective table, and "default" is an alias; they are timed, not ranked.
NOT_RANKED = ("default", "nsga2", "asha", "hyperband")
RANKED = [name for name in OPTIMIZERS if name not in NOT_RANKED]

# What --smoke sets: enough to run every method and mode once, in seconds.
SMOKE = {"seeds": 1, "evals": 25, "timing_tells": 20}

Trial = Callable[[int], list[Architecture]]


class Incumbent:
    """The best candidate by observed value only; a tie keeps the earlier observation.

    The harness knows each candidate's true accuracy, but an optimizer in the field does not: the
    incumbent must be chosen as a user would choose it, and only then scored by its truth.
    """

    def __init__(self) -> None:
        self.observed = -math.inf
        self.truth = 0.0

    def update(self, observed: float, truth: Callable[[], float]) -> float:
        """Offer one observation (truth is looked up only if it wins); the incumbent's truth."""
        if observed > self.observed:
            self.observed, self.truth = observed, truth()
        return self.truth


def observe(architecture: Architecture, seed: int, dataset: str) -> float:
    return evaluate(architecture, None, {"seed": seed, "dataset": dataset}, lambda _: None)[
        "val_accuracy"
    ]


def run_morphml(name: str, seed: int, evals: int, batch: int, dataset: str) -> list[float]:
    optimizer = make_optimizer(name, CellSpace(), seed=seed)
    rng, curve, best = random.Random(seed), [], Incumbent()
    while len(curve) < evals:
        asked = optimizer.ask(min(batch, evals - len(curve)))
        rng.shuffle(asked)
        for candidate in asked:
            architecture = candidate.architecture
            value = observe(architecture, seed, dataset)
            optimizer.tell(candidate, {"val_accuracy": value})
            curve.append(best.update(value, partial(true_accuracy, architecture, dataset)))
    return curve


def run_optuna(name: str, seed: int, evals: int, batch: int, dataset: str) -> list[float]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = (
        optuna.samplers.TPESampler(seed=seed)
        if name == "optuna_tpe"
        else optuna.samplers.RandomSampler(seed)
    )
    study = optuna.create_study(direction="maximize", sampler=sampler)
    space, rng, curve, best = CellSpace(), random.Random(seed), [], Incumbent()
    while len(curve) < evals:
        trials = [study.ask() for _ in range(min(batch, evals - len(curve)))]
        configs = [
            {edge: t.suggest_categorical(f"Op{i}", NB201_OPS) for i, edge in enumerate(EDGES)}
            for t in trials
        ]
        pairs = list(zip(trials, configs, strict=True))
        rng.shuffle(pairs)
        for trial, config in pairs:
            architecture = space.build(config)
            value = observe(architecture, seed, dataset)
            study.tell(trial, value)
            curve.append(best.update(value, partial(true_accuracy, architecture, dataset)))
    return curve


def run_one(job: tuple[str, int, int, int, str]) -> tuple[str, int, int, list[float]]:
    name, seed, evals, batch, dataset = job
    runner = run_optuna if name in OPTUNA else run_morphml
    return name, seed, batch, runner(name, seed, evals, batch, dataset)


def time_ask_tell(name: str, tells: int) -> float:
    """Mean seconds of one ask(1) + tell over `tells` steps (evaluation excluded)."""
    objectives = [
        {"metric": "val_accuracy", "direction": "maximize"},
        {"metric": "params", "direction": "minimize"},
    ]
    optimizer = make_optimizer(name, CellSpace(), objectives=objectives, seed=0)
    rng, spent = random.Random(0), 0.0
    for _ in range(tells):
        start = time.perf_counter()
        asked: list[Candidate] = optimizer.ask(1)
        middle = time.perf_counter()
        value = observe(asked[0].architecture, 0, "cifar10") if asked else 0.0
        resume = time.perf_counter()
        for candidate in asked:
            optimizer.tell(candidate, {"val_accuracy": value, "params": float(rng.random())})
        spent += (middle - start) + (time.perf_counter() - resume)
    return spent / tells


def table(results: dict[tuple[str, int], list[list[float]]], evals: int) -> str:
    """Mean true accuracy of the incumbent at each checkpoint in percent (curves hold fractions)."""
    checkpoints = [c for c in CHECKPOINTS if c <= evals]
    lines = ["| method | mode | " + " | ".join(f"@{c}" for c in checkpoints) + " |"]
    lines.append("|---|---|" + "---|" * len(checkpoints))
    for (name, batch), curves in sorted(results.items(), key=lambda item: (item[0][1], item[0][0])):
        means = [statistics.fmean(curve[c - 1] for curve in curves) for c in checkpoints]
        mode = "sequential" if batch == 1 else f"{batch} in flight"
        lines.append(f"| {name} | {mode} | " + " | ".join(f"{100 * m:.2f}" for m in means) + " |")
    return "\n".join(lines)


def positive_int(text: str) -> int:
    """An argparse type: a count that must be at least 1 (0 seeds or 0 timed tells mean nothing,
    and a mean over 0 tells would divide by zero)."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seeds", type=positive_int, default=20)
    parser.add_argument("--evals", type=positive_int, default=200)
    parser.add_argument("--jobs", type=positive_int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--methods", default=",".join([*RANKED, *OPTUNA]))
    parser.add_argument("--modes", default=f"1,{BATCH}", help="batch sizes: 1 is sequential")
    parser.add_argument("--dataset", default="cifar10")
    parser.add_argument("--timing-tells", type=positive_int, default=1000)
    parser.add_argument("--out", help="write the raw curves and timings as JSON here")
    smoke = "{seeds} seed(s), {evals} evaluations, {timing_tells} timed tells".format(**SMOKE)
    parser.add_argument("--smoke", action="store_true", help=f"{smoke} (overrides those flags)")
    args = parser.parse_args(argv)
    if args.smoke:
        vars(args).update(SMOKE)
    return args


def main() -> None:
    args = parse_args()
    methods = args.methods.split(",")
    jobs = [
        (m, s, args.evals, int(b), args.dataset)
        for m in methods
        for b in args.modes.split(",")
        for s in range(args.seeds)
    ]
    results: dict[tuple[str, int], list[list[float]]] = {}
    with multiprocessing.Pool(args.jobs) as pool:
        for name, _seed, batch, curve in pool.imap_unordered(run_one, jobs):
            results.setdefault((name, batch), []).append(curve)
            if len(results[(name, batch)]) == args.seeds:  # progress, for long runs
                print(f"done {name} batch {batch}; load {os.getloadavg()}", flush=True)
    print(f"load average {os.getloadavg()}; {args.seeds} seeds; {args.dataset}")
    print(table(results, args.evals))
    timed = [m for m in methods if m not in OPTUNA] + [m for m in NOT_RANKED if m != "default"]
    timings = {m: time_ask_tell(m, args.timing_tells) for m in timed}
    for name, seconds in timings.items():
        print(f"{name}: {seconds * 1000:.2f} ms per ask+tell at {args.timing_tells} tells")
    if args.out:
        with open(args.out, "w") as handle:
            json.dump(
                {"curves": {f"{k[0]}@{k[1]}": v for k, v in results.items()}, "timings": timings},
                handle,
            )


if __name__ == "__main__":
    main()
