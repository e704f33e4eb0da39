"""Weight-sharing NAS (issue 18): DARTS and SPOS on MNIST, against random architectures.

    .venv/bin/python -m bench.weight_sharing [--search-cpu-seconds 60] [--train-epochs 2]
        [--random 6] [--train-size 4000] [--val-size 1000] [--seed 0] [--json PATH]
    .venv/bin/python -m bench.weight_sharing --smoke     # seconds; tests/bench runs it

The space is NAS-Bench-201's cell (4 nodes, its 5 ops) in a small macro network for MNIST
(input [1, 28, 28], 8 stem channels, 1 cell per stage). Each method gets the same budget for
its search in CPU seconds of this process (torch on one thread; on a shared machine the wall
clock measures the neighbours too: at a load of 10 on 2 cores a process gets a fifth of a
core): one epoch is timed on a slice of the data first and the settings' epochs (and SPOS's
population) are chosen to fit. Three searches: DARTS first order with the
collapse fix (at most 2 skip_connect edges, early stop), DARTS first order without it, SPOS.

Every derived cell is then trained from scratch by morphml.evaluators.train.evaluate with the
same params (epochs, data subset, optimizer, seed) as each of `--random` random cells of the
space: the budget shared is the number of training epochs per architecture, and the CPU
seconds of every search and training are printed so the total costs can be compared (the
best of N random cells is random search at N trainings). Since the cell is NAS-Bench-201's,
each cell is also looked up in the CIFAR-10 table (mean validation accuracy over its seeds),
printed beside the table's optimum and the all-skip_connect cell (the "DARTS collapse" of the
NAS-Bench-201 paper). torch runs on one thread; the load average is printed with each figure.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import statistics
import time
from dataclasses import replace
from typing import Any

import torch

from morphml.evaluators.datasets import Dataset, load_dataset
from morphml.evaluators.tabular import load_table, true_accuracy
from morphml.evaluators.train import evaluate
from morphml.space.cell import NB201_OPS, CellSpace, edge_keys
from morphml.weight_sharing import Derived, SearchSettings, search
from morphml.weight_sharing.darts import Darts
from morphml.weight_sharing.spos import Spos
from morphml.weight_sharing.training import accuracy, to_tensors

NB201 = CellSpace()  # the table's space: the same config, NAS-Bench-201's own macro network
# What each method is asked; epochs (and SPOS's population) are fitted to the budget.
METHODS: dict[str, dict[str, Any]] = {
    "darts (skip fix)": {"method": "darts", "max_skip": 2, "early_stop": True},
    "darts (no fix)": {"method": "darts", "max_skip": None, "early_stop": False},
    "spos": {"method": "spos"},
}
PROBE_EXAMPLES = 512
SPOS_TRAIN_SHARE = 0.6  # of SPOS's budget; the rest scores cells in the evolution
SMOKE = {"search_cpu_seconds": 2.0, "train_epochs": 1, "random": 2, "train_size": 200,
         "val_size": 100, "channels": 4, "generations": 1}  # fmt: skip


def clock() -> float:
    """CPU seconds of this process: the budget's unit (see the module doc)."""
    return time.process_time()


def loadavg() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def bench_space(channels: int) -> CellSpace:
    return CellSpace(name="nb201-mnist", num_nodes=4, ops=NB201_OPS, input_shape=[1, 28, 28],
                     stem_channels=channels, cells_per_stage=1, num_classes=10)  # fmt: skip


def probe_seconds(space: CellSpace, settings: SearchSettings, data: Dataset) -> tuple[float, float]:
    """Seconds of one supernet epoch over all of `data`, and of scoring one SPOS cell, timed on
    a slice (one epoch of PROBE_EXAMPLES, then scaled)."""
    n = min(PROBE_EXAMPLES, len(data.y_train))
    part = Dataset(data.x_train[:n], data.y_train[:n], data.x_val, data.y_val)
    tensors = to_tensors(part, space, torch.device("cpu"))
    runner = (Darts if settings.method == "darts" else Spos)(space, settings, tensors,
                                                               torch.device("cpu"))  # fmt: skip
    started = clock()
    runner.train_epoch()
    train = (clock() - started) * len(data.y_train) / n
    started = clock()
    if isinstance(runner, Darts):
        accuracy(runner.model, tensors.x_val, tensors.y_val)  # each epoch's validation
    else:
        runner.score(runner.model.layout.draw(random.Random(0)))
    evaluation = clock() - started
    return train + evaluation, evaluation


def fit_settings(
    space: CellSpace, base: SearchSettings, data: Dataset, seconds: float
) -> tuple[SearchSettings, float]:
    """The settings with epochs (and for SPOS the population) fitted to `seconds`; the
    predicted seconds of the search."""
    epoch_s, score_s = probe_seconds(space, base, data)
    if base.method == "darts":
        epochs = max(1, math.floor(seconds / epoch_s))
        return replace(base, epochs=epochs), epochs * epoch_s
    epochs = max(1, math.floor(seconds * SPOS_TRAIN_SHARE / epoch_s))
    scores = (seconds - epochs * epoch_s) / score_s - epochs  # each epoch scores one probe
    population = int(min(50, max(4, scores // (base.generations + 1))))
    predicted = epochs * epoch_s + (epochs + population * (base.generations + 1)) * score_s
    return replace(base, epochs=epochs, population=population), predicted


def train_params(args: argparse.Namespace) -> dict[str, Any]:
    return {"dataset": "mnist", "train_size": args.train_size, "val_size": args.val_size,
            "seed": args.seed, "epochs": args.train_epochs}  # fmt: skip


def from_scratch(
    space: CellSpace, config: dict[str, Any], params: dict[str, Any]
) -> dict[str, Any]:
    started, wall = clock(), time.perf_counter()
    metrics = evaluate(space.build(config), None, params, lambda m: None)
    return {
        "val_accuracy": metrics["val_accuracy"],
        "train_cpu_s": clock() - started,
        "train_wall_s": time.perf_counter() - wall,
        "nb201_cifar10_val": true_accuracy(NB201.build(config)),
        "genotype": NB201.to_nb201(NB201.build(config)),
        "skip_edges": sum(op == "skip_connect" for op in config.values()),
        "loadavg": loadavg(),
    }


def run_method(
    name: str, space: CellSpace, data: Dataset, args: argparse.Namespace
) -> dict[str, Any]:
    base = SearchSettings(**METHODS[name], epochs=1, arch_lr=args.arch_lr, seed=args.seed,
                          generations=args.generations)  # fmt: skip
    settings, predicted = fit_settings(space, base, data, args.search_cpu_seconds)
    reports: list[dict[str, float]] = []
    started, wall = clock(), time.perf_counter()
    found: list[Derived] = search(space, settings, data, reports.append, device="cpu")
    search_s, search_wall_s = clock() - started, time.perf_counter() - wall
    epochs = [r for r in reports if "epoch" in r]
    row: dict[str, Any] = {
        "method": name, "epochs": settings.epochs, "epochs_run": len(epochs),
        "population": settings.population if settings.method == "spos" else None,
        "predicted_cpu_s": predicted, "search_cpu_s": search_s,
        "search_wall_s": search_wall_s, "search_loadavg": loadavg(),
        "shared_weight_score": found[0].score, "config": found[0].config,
        "raw_skip_edges": [r["skip_edges"] for r in epochs if "skip_edges" in r],
        "supernet_val_accuracy": epochs[-1]["supernet_val_accuracy"] if epochs else None,
    }  # fmt: skip
    row.update(from_scratch(space, found[0].config, train_params(args)))
    print(f"{name}: {row['genotype']}  scratch {row['val_accuracy']:.4f}  "
          f"nb201 {100 * row['nb201_cifar10_val']:.2f}  search {search_s:.0f} cpu-s "
          f"({search_wall_s:.0f} s wall, {predicted:.0f} cpu-s predicted) "
          f"({settings.epochs} epochs)  load {row['loadavg']}", flush=True)  # fmt: skip
    return row


def random_cells(space: CellSpace, args: argparse.Namespace) -> list[dict[str, Any]]:
    rng = random.Random(args.seed)
    rows = []
    for _ in range(args.random):
        config = {key: rng.choice(NB201_OPS) for key in edge_keys(4)}
        rows.append(from_scratch(space, config, train_params(args)))
        print(f"random: {rows[-1]['genotype']}  scratch {rows[-1]['val_accuracy']:.4f}  "
              f"load {rows[-1]['loadavg']}", flush=True)  # fmt: skip
    return rows


def references() -> dict[str, float]:
    """The CIFAR-10 table's optimum and the all-skip_connect cell (the DARTS collapse)."""
    table = load_table("cifar10")
    best = max(statistics.fmean(entry["val_acc"]) for entry in table.values()) / 100
    skips = NB201.build({key: "skip_connect" for key in edge_keys(4)})
    return {"nb201_optimum": best, "all_skip": true_accuracy(skips)}


def summary(methods: list[dict[str, Any]], randoms: list[dict[str, Any]]) -> dict[str, Any]:
    scratch = [r["val_accuracy"] for r in randoms]
    table = [r["nb201_cifar10_val"] for r in randoms]
    best = max(randoms, key=lambda r: r["val_accuracy"])
    return {
        "random_median": statistics.median(scratch), "random_best": best["val_accuracy"],
        "random_median_nb201": statistics.median(table),
        "random_best_nb201": best["nb201_cifar10_val"],  # the table value of the best by MNIST
        "random_train_cpu_s": sum(r["train_cpu_s"] for r in randoms),
        "methods": {m["method"]: m["val_accuracy"] for m in methods},
    }  # fmt: skip


def print_table(methods: list[dict[str, Any]], randoms: list[dict[str, Any]],
                refs: dict[str, float]) -> None:  # fmt: skip
    print(
        "\n| cell from | NB201 genotype | epochs run | search CPU s | shared-weight val | "
        "from scratch val | NB201 CIFAR-10 val |"
    )
    print("|---|---|---|---|---|---|---|")
    for m in methods:
        genotype = m["genotype"].replace("|", "\\|")  # a bare | would split the table's cell
        print(f"| {m['method']} | `{genotype}` | {m['epochs_run']}/{m['epochs']} | "
              f"{m['search_cpu_s']:.0f} | {m['shared_weight_score']:.4f} | "
              f"{m['val_accuracy']:.4f} | {100 * m['nb201_cifar10_val']:.2f} |")  # fmt: skip
    s = summary(methods, randoms)
    print(
        f"| random x{len(randoms)}: median | | | | | {s['random_median']:.4f} | "
        f"{100 * s['random_median_nb201']:.2f} |"
    )
    print(
        f"| random x{len(randoms)}: best | | | | | {s['random_best']:.4f} | "
        f"{100 * s['random_best_nb201']:.2f} |"
    )
    print(
        f"| NB201 optimum / all-skip_connect (DARTS collapse) | | | | | | "
        f"{100 * refs['nb201_optimum']:.2f} / {100 * refs['all_skip']:.2f} |"
    )


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--search-cpu-seconds", type=float, default=60.0)
    parser.add_argument("--train-epochs", type=int, default=2)
    parser.add_argument("--random", type=int, default=6)
    parser.add_argument("--train-size", type=int, default=4000)
    parser.add_argument("--val-size", type=int, default=1000)
    parser.add_argument("--channels", type=int, default=8)
    parser.add_argument("--generations", type=int, default=4)
    # 10x DARTS's 3e-4: a CPU budget buys a few hundred steps, not DARTS's ~20,000.
    parser.add_argument("--arch-lr", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--smoke", action="store_true", help="a few seconds, for the tests")
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args(argv)
    if args.smoke:
        for key, value in SMOKE.items():
            setattr(args, key, value)
    if args.search_cpu_seconds <= 0 or args.random < 1 or args.train_epochs < 1:
        parser.error("--search-cpu-seconds, --random and --train-epochs must be positive")
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse(argv)
    torch.set_num_threads(1)
    # torch imports its compiler on the first optimizer (seconds): not in the first probe.
    torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    os.environ["MORPHML_TORCH_THREADS"] = "1"  # train.evaluate reads it
    started, load_start = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), loadavg()
    print(f"weight sharing bench {started}, load {load_start}, args {vars(args)}", flush=True)
    space = bench_space(args.channels)
    data = load_dataset("mnist").subset(args.train_size, args.val_size, args.seed)
    methods = [run_method(name, space, data, args) for name in METHODS]
    randoms = random_cells(space, args)
    refs = references()
    print_table(methods, randoms, refs)
    result = {"date": started, "loadavg_start": load_start, "loadavg_end": loadavg(),
              "args": vars(args), "methods": methods, "random": randoms, "references": refs,
              "summary": summary(methods, randoms)}  # fmt: skip
    print(f"load average at the end: {result['loadavg_end']}")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(result, handle, indent=1)
    return result


if __name__ == "__main__":
    main()
