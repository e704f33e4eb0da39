"""Workers end to end (issue 14): real server + real `morphml-worker` agents, beside Optuna and Ray.

Usage (from the repository root):

    .venv/bin/python -m bench.workers_e2e --evals 200 --repeats 2 --databases sqlite,postgres \\
        --rivals optuna,ray --train --json /tmp/e2e.json
    .venv/bin/python -m bench.workers_e2e --quick   # seconds; tests/bench/test_workers_e2e_smoke.py

To measure commits while others edit the working tree, run the server and agents from copies,
interleaved (before, after, Optuna, ...):

    mkdir -p /tmp/b && git archive REV1 morphml server worker alembic | tar -x -C /tmp/b
    mkdir -p /tmp/a && git archive REV2 morphml server worker alembic | tar -x -C /tmp/a
    .venv/bin/python -m bench.workers_e2e --tree before=/tmp/b --tree after=/tmp/a ...

For each repeat and set-up (W workers x S slots), interleaved: MorphML on SQLite, Optuna on a
SQLite file, MorphML on Postgres, Optuna on the same Postgres, then Ray Tune; each measurement on
a fresh database, each with the load average before and after and a sync-write probe, because the
bench machine is shared. Zero-time NAS-Bench-201 `tabular` evaluations (random search), so what is
measured is the path a task takes. `--train` adds MNIST `train` rows, cold vs warm processes.
Prints markdown tables (bench/README.md) and, with --json, the raw rows.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from bench.cp_env import fresh_postgres, machine_note, running_server, scratch_dir
from bench.e2e_cluster import (
    COLD_FLAG,
    Setup,
    has_cold_flag,
    run_experiment,
    tabular_spec,
    train_spec,
)
from bench.e2e_report import Row, report
from bench.e2e_rivals import ray_available, run_optuna, run_ray


@dataclass(frozen=True)
class Plan:
    evals: int
    repeats: int
    setups: tuple[Setup, ...]
    databases: tuple[str, ...]
    rivals: tuple[str, ...]
    train: bool
    train_evals: int
    # (name, tree) the server and agents run from, interleaved; None: this working tree.
    trees: tuple[tuple[str, Path | None], ...] = (("now", None),)


FULL = Plan(
    evals=200,
    repeats=2,
    setups=(Setup(1, 1), Setup(4, 1), Setup(2, 4)),
    databases=("sqlite", "postgres"),
    rivals=("optuna", "ray"),
    train=False,
    train_evals=10,
)
QUICK = Plan(
    evals=4,
    repeats=1,
    setups=(Setup(1, 1), Setup(1, 2)),
    databases=("sqlite",),
    rivals=("optuna",),
    train=False,
    train_evals=2,
)


@contextmanager
def database(kind: str, directory: Path, name: str) -> Iterator[str]:
    """A fresh database URL: a new SQLite file in `directory`, or a new Postgres database."""
    if kind == "sqlite":
        yield f"sqlite:///{directory / name}.db"
    else:
        with fresh_postgres(name.replace("-", "_")) as url:
            yield url


class Bench:
    """Runs the measurements in order and keeps their rows (machine notes beside each)."""

    def __init__(self, plan: Plan, scratch: Path) -> None:
        self.plan = plan
        self.scratch = scratch
        self.rows: list[Row] = []

    def _measure(
        self, key: dict[str, Any], work: Callable[[Path], tuple[int, float, str | None]]
    ) -> None:
        run_dir = self.scratch / f"{len(self.rows)}-{key['system']}-{key['setup']}-{key['variant']}"
        run_dir.mkdir()
        note = machine_note(run_dir)
        n, rate, overhead = work(run_dir)
        row = {
            **key,
            "rate": rate,
            "n": n,
            "overhead": overhead,
            "load_before": note.load1,
            "load_after": os.getloadavg()[0],
            "dsync_ms": note.dsync_ms,
        }
        self.rows.append(row)
        print(f"# {json.dumps(row)}", file=sys.stderr, flush=True)

    def morphml(self, key: dict[str, Any], setup: Setup, spec: dict[str, Any]) -> None:
        """`key`: system, variant, repeat, database; run from the tree on PYTHONPATH now."""
        kind = key["database"]

        def work(run_dir: Path) -> tuple[int, float, str | None]:
            with database(kind, run_dir, "morphml") as url:
                with running_server(url, run_dir / "server.log") as server:
                    timeout = 120 + spec["budget"]["max_evaluations"] * 5.0
                    result = run_experiment(server, setup, spec, run_dir, timeout)
            overhead = result.overhead.text() if result.overhead else None
            return result.evaluations, result.rate, overhead

        self._measure({**key, "setup": setup.name}, work)

    def optuna(self, repeat: int, setup: Setup, kind: str) -> None:
        def work(run_dir: Path) -> tuple[int, float, str | None]:
            with database(kind, run_dir, "optuna") as url:
                processes = setup.workers * setup.slots
                result = run_optuna(url, processes=processes, trials=self.plan.evals)
            return result.trials, result.rate, f"{result.errors} errors" if result.errors else None

        self._measure(
            {
                "system": "optuna",
                "variant": "-",
                "repeat": repeat,
                "setup": setup.name,
                "database": kind,
            },
            work,
        )

    def ray(self, repeat: int, setup: Setup, kind: str) -> None:
        def work(run_dir: Path) -> tuple[int, float, str | None]:
            concurrency = setup.workers * setup.slots
            result = run_ray(
                concurrency=concurrency, trials=self.plan.evals, work_dir=run_dir, timeout=900
            )
            return result.trials, result.rate, None

        self._measure(
            {
                "system": "ray",
                "variant": "-",
                "repeat": repeat,
                "setup": setup.name,
                "database": kind,
            },
            work,
        )


def tabular_round(bench: Bench, repeat: int, setup: Setup) -> None:
    """One set-up, interleaved: on each database MorphML from each tree, then Optuna; Ray beside
    the first database (it keeps its trials in memory: no database of its own)."""
    plan = bench.plan
    spec = tabular_spec(plan.evals, parallelism=2 * setup.workers * setup.slots + 4)
    for index, kind in enumerate(plan.databases):
        for name, tree in plan.trees:
            with running_from(tree):
                key = {"system": "morphml", "variant": name, "repeat": repeat, "database": kind}
                bench.morphml(key, setup, spec)
        if "optuna" in plan.rivals:
            bench.optuna(repeat, setup, kind)
        if "ray" in plan.rivals and index == 0 and ray_available():
            bench.ray(repeat, setup, kind)


def train_round(bench: Bench, repeat: int) -> None:
    """MNIST `train`, 1 worker x 1 slot on SQLite, from each tree: a fresh process per task
    (cold) and, where the agent keeps warm processes (issue 14), its default (warm). The agent
    before issue 14 is always cold."""
    spec = train_spec(bench.plan.train_evals, parallelism=2)
    for name, tree in bench.plan.trees:
        with running_from(tree):
            key = {"variant": name, "repeat": repeat, "database": "sqlite"}
            warm = has_cold_flag()
            cold = Setup(1, 1, (COLD_FLAG, "1")) if warm else Setup(1, 1)
            bench.morphml({**key, "system": "train-cold"}, cold, spec)
            if warm:
                bench.morphml({**key, "system": "train-warm"}, Setup(1, 1), spec)


def run(plan: Plan, scratch: Path) -> list[Row]:
    bench = Bench(plan, scratch)
    for repeat in range(1, plan.repeats + 1):
        for setup in plan.setups:
            tabular_round(bench, repeat, setup)
        if plan.train:
            train_round(bench, repeat)
    return bench.rows


@contextmanager
def running_from(tree: Path | None) -> Iterator[None]:
    """Start the server, the agents and their evaluations from `tree` (first on their
    PYTHONPATH; the editable install's finder comes after it), so that edits to the working tree
    during a run do not change what is measured. None: this working tree."""
    saved = os.environ.pop("PYTHONPATH", None)
    if tree is not None:
        os.environ["PYTHONPATH"] = str(tree.resolve())
    try:
        yield
    finally:
        os.environ.pop("PYTHONPATH", None)
        if saved is not None:
            os.environ["PYTHONPATH"] = saved


def parse_tree(text: str) -> tuple[str, Path]:
    """NAME=PATH (a bare PATH is named "tree"): a copy of morphml/ server/ worker/ alembic/."""
    name, _, path = text.rpartition("=")
    tree = Path(path)
    for package in ("morphml", "server", "worker", "alembic"):
        if not (tree / package).is_dir():
            raise SystemExit(f"--tree {text}: no {package}/ (git archive REV {package} ...)")
    return name or "tree", tree


def parse_plan(argv: list[str] | None) -> tuple[Plan, Path | None]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--evals", type=int, help="evaluations (trials) per measurement (200)")
    parser.add_argument("--repeats", type=int, help="rounds over every set-up (2)")
    parser.add_argument("--setups", help="WORKERSxSLOTS,... (1x1,4x1,2x4)")
    parser.add_argument("--databases", help="sqlite,postgres (both)")
    parser.add_argument("--rivals", help="optuna,ray (both); 'none' for MorphML alone")
    parser.add_argument("--train", action="store_true", help="add the MNIST train rows")
    parser.add_argument("--train-evals", type=int, help="evaluations per train row (10)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, SQLite, Optuna (smoke)")
    parser.add_argument("--json", type=Path, help="write the raw rows here")
    parser.add_argument(
        "--tree",
        action="append",
        help="NAME=PATH: run the server and agents from this copy (git archive); repeat it to "
        "interleave trees, e.g. --tree before=/tmp/b --tree after=/tmp/a",
    )
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    plan = replace(
        plan,
        evals=args.evals or plan.evals,
        repeats=args.repeats or plan.repeats,
        setups=tuple(Setup.parse(s) for s in args.setups.split(","))
        if args.setups
        else plan.setups,
        databases=tuple(args.databases.split(",")) if args.databases else plan.databases,
        rivals=tuple(args.rivals.split(",")) if args.rivals else plan.rivals,
        train=args.train or plan.train,
        train_evals=args.train_evals or plan.train_evals,
        trees=tuple(parse_tree(t) for t in args.tree) if args.tree else plan.trees,
    )
    return plan, args.json


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # SIGTERM too stops the servers and agents this run started


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, _interrupt)
    plan, json_path = parse_plan(argv)
    with scratch_dir() as scratch:
        rows = run(plan, scratch)
    if json_path is not None:
        json_path.write_text(json.dumps(rows, indent=1))
    print(report(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
