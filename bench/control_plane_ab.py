"""Interleaved before/after runs of the control-plane bench, for a server change.

    mkdir -p /tmp/cp_before && git archive <rev> server alembic | tar -x -C /tmp/cp_before
    (optionally the same for the new side into /tmp/cp_after, with --after /tmp/cp_after, so
    that edits to the working tree during the run do not change what is measured)
    .venv/bin/python -m bench.control_plane_ab --before /tmp/cp_before --out /tmp/ab.json \\
        tp:sqlite:8 tp:postgres:8 scale:sqlite:100000 idle:sqlite

Each step runs the old server (the `server` package from --before, first on PYTHONPATH) and
then the working tree's, back to back, and records the load average before and after each, since
the bench machines are shared. Rows are those of `bench.control_plane` plus `variant`, `step`.
A --before tree needs the working tree's migrations when the bench's history writer inserts
columns the old schema lacks (copy the new alembic/versions files into it).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench.control_plane import FULL, Bench
from bench.cp_env import raise_fd_limit, scratch_dir


def load_average() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def run_step(bench: Bench, step: str) -> None:
    kind, *args = step.split(":")
    if kind == "tp":
        bench.ours(args[0], int(args[1]))
    elif kind == "idle":
        bench.idle(args[0])
    elif kind in ("scale", "prune"):
        bench.scale(args[0], int(args[1]), same_experiment=True, pruned=kind == "prune")
    else:
        raise SystemExit(f"unknown step {step!r}: tp:DB:N, scale:DB:TASKS, prune:DB:TASKS, idle:DB")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--before", type=Path, required=True, help="tree holding the old server/")
    parser.add_argument(
        "--after", type=Path, help="tree holding the new server/ (default: this working tree)"
    )
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("steps", nargs="+", help="tp:DB:N, scale:DB:TASKS, prune:DB:TASKS, idle:DB")
    args = parser.parse_args(argv)
    raise_fd_limit()
    rows: list[dict[str, Any]] = []
    with scratch_dir() as scratch:
        bench = Bench(replace(FULL, scale_workers=8), scratch)
        for step in args.steps:
            for variant in ("before", "after"):
                tree = args.before if variant == "before" else args.after
                rows += _measure(bench, step, variant, tree)
                args.out.write_text(json.dumps(rows, indent=1, default=str))
    return 0


def _measure(bench: Bench, step: str, variant: str, tree: Path | None) -> list[dict[str, Any]]:
    if tree is not None:
        os.environ["PYTHONPATH"] = str(tree)  # the server subprocess inherits it
    else:
        os.environ.pop("PYTHONPATH", None)
    load_before, first = load_average(), len(bench.rows)
    run_step(bench, step)
    new = bench.rows[first:]
    for row in new:
        row.update(variant=variant, step=step, load_before=load_before, load_after=load_average())
    return new


if __name__ == "__main__":
    sys.exit(main())
