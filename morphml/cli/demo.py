"""`morphml demo`: a real distributed NAS run on this machine, from nothing to a leaderboard.

Starts `morphml-server` on SQLite (`<run dir>/morphml.db`) and local `morphml-worker` processes
(work directories `<run dir>/worker-N/`, logs in `<run dir>/logs/`), submits an experiment, shows
live progress, then writes the leaderboard with each candidate (JSON and CSV), the best
architecture as standalone PyTorch source and as JSON, its trained weights (`best_model.pt`,
downloaded from the server's artifact store, sha256-checked; the MNIST demo) and a convergence
plot. Every process it
started is stopped on the way out; Ctrl-C writes the results so far first.
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
from morphml.cli.artifacts import best_weights
from morphml.cli.local_search import demo_space, write_best
from morphml.cli.plots import plot_convergence
from morphml.cli.processes import local_cluster
from morphml.cli.watch import watch_experiment
from morphml.client import Client
from morphml.errors import MorphMLError
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


def run_dir_for(out: Path, kind: str) -> Path:
    """A new `out/<kind>-<time>/` (absolute: workers run each evaluation in its task directory)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    run_dir = out.resolve() / f"{kind}-{stamp}"
    suffix = 1
    while run_dir.exists():  # two runs in the same second
        suffix += 1
        run_dir = out.resolve() / f"{kind}-{stamp}-{suffix}"
    run_dir.mkdir(parents=True)
    return run_dir


def run_demo(options: DemoOptions, console: Console) -> Path:
    """Run the demo; on Ctrl-C (or SIGTERM) write the results so far, stop every process it
    started, then raise KeyboardInterrupt."""
    # Ctrl-C and SIGTERM unwind through `local_cluster`, which stops every process it started.
    # Set explicitly: a shell starting us in the background hands down SIGINT as ignored.
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    run_dir = run_dir_for(options.out, "nb201" if options.tabular else "mnist")
    if options.tabular:
        spec, slots = tabular_spec(options.evaluations or 200), 4
    else:
        spec, slots = mnist_spec(options.evaluations or 30), 1
    console.print(f"run directory: {run_dir}")
    interrupted = False
    with local_cluster(run_dir, options.workers, slots) as url, Client(url) as client:
        console.print(f"server {url}  (Swagger UI: {url}/docs)  {options.workers} workers")
        console.print(f"dashboard {url}/ui/  (open it in a browser while the demo runs)")
        experiment = client.create_experiment(spec)
        try:  # from here on a Ctrl-C writes what there is, wherever it lands
            console.print(f"submitted experiment {experiment.id}: {spec['name']}")
            experiment = watch_experiment(client, experiment.id, console)
        except KeyboardInterrupt:
            interrupted = True
            console.print("interrupted: writing the results so far, then stopping")
            experiment = client.experiment(experiment.id)
        tasks = client.tasks(experiment.id)
        trained = _download_best_weights(client, experiment, tasks, run_dir, console)
    _write_outputs(run_dir, experiment, tasks, console, trained)
    if interrupted:
        raise KeyboardInterrupt
    return run_dir


def _download_best_weights(
    client: Client, experiment: Any, tasks: list[Any], run_dir: Path, console: Console
) -> bool:
    """The best task's trained weights into `best_model.pt`, while the server still runs;
    whether they came (a tabular run trains nothing)."""
    kind = (experiment.spec.get("evaluator") or {}).get("kind")
    if kind != "train" or not render.ranked(experiment, tasks):
        return False
    try:
        artifact = best_weights(client, experiment.id)
        path = client.download_artifact(artifact.task_id, artifact.name, run_dir / "best_model.pt")
    except MorphMLError as exc:
        console.print(f"best model weights not downloaded: {exc}", markup=False)
        return False
    console.print(
        f"downloaded the best model's trained weights (task {artifact.task_id}, "
        f"{artifact.size / 1e6:.2f} MB, sha256 checked) to {path}",
        markup=False,
        highlight=False,
    )
    return True


def _write_outputs(
    run_dir: Path, experiment: Any, tasks: list[Any], console: Console, trained: bool = False
) -> None:
    rows = render.result_rows(experiment, tasks)
    if rows:
        title = f"Leaderboard ({len(rows)} evaluations)"
        columns = render.leaderboard_columns(experiment, rows)
        console.print(render.rows_table(rows[:10], title, columns))
    else:
        console.print(f"no completed evaluation ({render.counts_text(experiment)})")
    (run_dir / "results.json").write_text(render.rows_json(rows) + "\n")
    (run_dir / "results.csv").write_text(render.rows_csv(rows))
    (run_dir / "experiment.json").write_text(
        json.dumps(experiment.model_dump(mode="json"), indent=2) + "\n"
    )
    ranked = render.ranked(experiment, tasks)
    if ranked:
        best = Architecture.from_dict(ranked[0].candidate["architecture"])
        write_best(best, run_dir, trained=trained)
        metric = render.objectives(experiment)[0]["metric"]
        plot_convergence(render.convergence(experiment, tasks), metric, run_dir / "convergence.png")
    console.print(wrote_line(run_dir), markup=False, highlight=False, soft_wrap=True)


def wrote_line(run_dir: Path) -> str:
    """`wrote /path/run/: a.json, b.csv, logs/, ...`: every file and folder in the run directory."""
    names = sorted(p.name + ("/" if p.is_dir() else "") for p in run_dir.iterdir())
    return f"wrote {run_dir}/: " + ", ".join(names)
