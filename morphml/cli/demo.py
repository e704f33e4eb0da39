"""`morphml demo`: a real distributed NAS run on this machine, from nothing to a leaderboard.

Starts `morphml-server` on the embedded SQLite default and local `morphml-worker` processes,
submits an experiment, shows live progress, then writes the leaderboard (JSON and CSV), the best
architecture as standalone PyTorch source and a convergence plot. Every process it started is
stopped on the way out, Ctrl-C included.
"""

from __future__ import annotations

import json
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from morphml.architecture import Architecture
from morphml.cli import render
from morphml.cli.local_search import demo_space
from morphml.cli.plots import plot_convergence
from morphml.cli.processes import local_cluster
from morphml.cli.watch import watch_experiment
from morphml.client import Client
from morphml.space.cell import CellSpace


@dataclass(frozen=True)
class DemoOptions:
    tabular: bool = False
    evaluations: int | None = None
    workers: int = 2
    out: Path = Path("results")


def mnist_spec(evaluations: int) -> dict[str, Any]:
    """A CNN search on an MNIST subset: small enough for 2 CPU cores, big enough to rank CNNs."""
    return {
        "name": "mnist-cnn",
        "search_space": demo_space().to_dict(),
        "optimizer": {
            "name": "regularized_evolution",
            "params": {"population_size": 8, "sample_size": 3},
        },
        "objectives": [{"metric": "val_accuracy", "direction": "maximize"}],
        "evaluator": {
            "kind": "train",
            "params": {
                "dataset": "mnist",
                "epochs": 2,
                "train_size": 5000,
                "val_size": 2000,
                "lr": 0.002,
            },
        },
        "budget": {"max_evaluations": evaluations},
        "parallelism": 2,
        "lease_seconds": 30,
        "max_attempts": 2,
        "seed": 0,
    }


def tabular_spec(evaluations: int) -> dict[str, Any]:
    """NAS-Bench-201 CIFAR-10 looked up from the published table, with a scaled training sleep."""
    return {
        "name": "nas-bench-201",
        "search_space": CellSpace().to_dict(),
        "optimizer": {"name": "default", "params": {}},
        "objectives": [{"metric": "val_accuracy", "direction": "maximize"}],
        "evaluator": {"kind": "tabular", "params": {"dataset": "cifar10", "sleep_scale": 0.002}},
        "budget": {"max_evaluations": evaluations},
        "parallelism": 8,
        "lease_seconds": 30,
        "seed": 0,
    }


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def run_demo(options: DemoOptions, console: Console) -> Path:
    # Ctrl-C and SIGTERM unwind through `local_cluster`, which stops every process it started.
    # Set explicitly: a shell starting us in the background hands down SIGINT as ignored.
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    kind = "nb201" if options.tabular else "mnist"
    # Absolute: workers run each evaluation with its task directory as the working directory.
    run_dir = options.out.resolve() / f"{kind}-{time.strftime('%Y%m%d-%H%M%S')}"
    run_dir.mkdir(parents=True, exist_ok=True)
    if options.tabular:
        spec, slots = tabular_spec(options.evaluations or 200), 4
    else:
        spec, slots = mnist_spec(options.evaluations or 30), 1
    console.print(f"run directory: {run_dir}")
    with local_cluster(run_dir, options.workers, slots) as url, Client(url) as client:
        console.print(f"server {url}  (Swagger UI: {url}/docs)  {options.workers} workers")
        experiment = client.create_experiment(spec)
        console.print(f"submitted experiment {experiment.id}: {spec['name']}")
        experiment = watch_experiment(client, experiment.id, console)
        tasks = client.tasks(experiment.id)
    _write_outputs(run_dir, experiment, tasks, console)
    return run_dir


def _write_outputs(run_dir: Path, experiment: Any, tasks: list[Any], console: Console) -> None:
    rows = render.result_rows(experiment, tasks)
    title = f"Leaderboard ({len(rows)} evaluations)"
    columns = render.leaderboard_columns(experiment)
    console.print(render.rows_table(rows[:10], title, columns))
    (run_dir / "results.json").write_text(render.rows_json(rows) + "\n")
    (run_dir / "results.csv").write_text(render.rows_csv(rows))
    (run_dir / "experiment.json").write_text(
        json.dumps(experiment.model_dump(mode="json"), indent=2)
    )
    ranked = render.ranked(experiment, tasks)
    if ranked:
        best = Architecture.from_dict(ranked[0].candidate["architecture"])
        (run_dir / "best_model.py").write_text(best.to_pytorch_source("BestNet"))
        metric = render.objectives(experiment)[0]["metric"]
        plot_convergence(render.convergence(experiment, tasks), metric, run_dir / "convergence.png")
    console.print(f"wrote {run_dir}/: results.json, results.csv, best_model.py, convergence.png")
