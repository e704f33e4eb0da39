"""Control-plane throughput, latency and scale, side by side with Optuna and the bare-SQL ceiling.

Usage (from the repository root; the server runs as its own process, the simulated workers here):

    .venv/bin/python -m bench.control_plane --out /tmp/cp.json   # full run, about 12 minutes
    .venv/bin/python -m bench.control_plane --smoke               # a few seconds, SQLite only

Prints markdown tables (bench/README.md, section "Control plane") and, with --out, raw JSON.
Comparable runs are interleaved (ours, then Optuna, on the same database kind) and each carries
the load average and a sync-write probe, because the bench machines are shared.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import cp_report
from bench.cp_env import (
    fresh_postgres,
    machine_note,
    raise_fd_limit,
    running_server,
    scratch_dir,
)
from bench.cp_history import insert_history
from bench.cp_idle import run_idle
from bench.cp_rivals import prepare_ceiling, run_ceiling, run_optuna
from bench.cp_workers import MEDIAN_PRUNER, TRANSPORT_RETRIES, percentile, run_cycles

Row = dict[str, Any]


@dataclass(frozen=True)
class Plan:
    """What one run measures; FULL for the README table, SMOKE for CI."""

    workers: tuple[int, ...]
    rival_workers: tuple[int, ...]
    databases: tuple[str, ...]
    warmup: float
    seconds: float
    ceiling_clients: tuple[int, ...]
    scale_sizes: tuple[int, ...]
    scale_workers: int
    scale_other: bool
    idle_workers: int
    idle_seconds: float
    idle_probes: int
    # Latency when the server is not saturated: N workers whose evaluations take this long.
    paced_workers: int
    paced_eval_seconds: float


FULL = Plan(
    workers=(1, 8, 32, 128),
    rival_workers=(1, 8, 32),
    databases=("sqlite", "postgres"),
    warmup=2.0,
    seconds=10.0,
    ceiling_clients=(1, 4, 16),
    scale_sizes=(1_000, 10_000, 100_000),
    scale_workers=8,
    scale_other=True,
    idle_workers=1_000,
    idle_seconds=60.0,
    idle_probes=5,
    paced_workers=32,
    paced_eval_seconds=0.5,
)
SMOKE = Plan(
    workers=(2,),
    rival_workers=(2,),
    databases=("sqlite",),
    warmup=0.2,
    seconds=0.5,
    ceiling_clients=(),
    scale_sizes=(100,),
    scale_workers=2,
    scale_other=False,
    idle_workers=10,
    idle_seconds=0.5,
    idle_probes=1,
    paced_workers=2,
    paced_eval_seconds=0.05,
)


class Bench:
    """Runs the plan's measurements in order and keeps one row per measurement."""

    def __init__(self, plan: Plan, scratch: Path) -> None:
        self.plan = plan
        self.scratch = scratch
        self.rows: list[Row] = []
        self._serial = 0
        self._note = ""

    def _record(self, row: Row) -> None:
        row["machine"] = self._note
        row["transport_retries"] = TRANSPORT_RETRIES["count"]
        TRANSPORT_RETRIES["count"] = 0
        self.rows.append(row)
        print(json.dumps(row, default=str), file=sys.stderr, flush=True)

    def _probe(self) -> None:
        self._note = machine_note(self.scratch).text()

    @contextmanager
    def database(self, kind: str) -> Iterator[str]:
        """A fresh database of `kind` for one measurement (SQLite file or Postgres database)."""
        self._serial += 1
        if kind == "sqlite":
            yield f"sqlite:///{self.scratch / f'run-{self._serial}.db'}"
            return
        with fresh_postgres(str(self._serial)) as url:
            yield url

    def ours(self, kind: str, workers: int, eval_seconds: float = 0.0) -> None:
        section = "paced" if eval_seconds else "throughput"
        row = self._cycles(section, kind, workers, eval_seconds=eval_seconds)
        self._record({**row, "eval_seconds": eval_seconds})

    def _cycles(
        self,
        section: str,
        kind: str,
        workers: int,
        prepare: Callable[[str, int], None] | None = None,
        eval_seconds: float = 0.0,
        pruner: dict[str, Any] | None = None,
    ) -> Row:
        """Workers cycling against a fresh server and database: the row for `section`.
        `prepare(database_url, experiment_id)` runs once the experiment exists."""
        self._probe()
        with self.database(kind) as url, running_server(url, self.scratch / "server.log") as server:
            stats, cpu = asyncio.run(
                run_cycles(
                    server.url,
                    workers=workers,
                    warmup=self.plan.warmup,
                    seconds=self.plan.seconds,
                    cpu=server.cpu_seconds,
                    prepare=None if prepare is None else functools.partial(prepare, url),
                    eval_seconds=eval_seconds,
                    pruner=pruner,
                )
            )
            peak = server.peak_rss_mb()
        return _cycle_row(section, kind, workers, stats, cpu, self.plan.seconds, peak)

    def optuna(self, kind: str, storage: str, processes: int) -> None:
        self._probe()
        if storage == "journal":
            target = str(self.scratch / f"journal-{processes}.log")
            rate, errors = run_optuna(
                "journal", target, processes=processes, seconds=self.plan.seconds
            )
        else:
            with self.database(kind) as url:
                rate, errors = run_optuna(
                    "rdb", url, processes=processes, seconds=self.plan.seconds
                )
        row = {"section": "optuna", "system": f"optuna-{storage}", "db": kind, "n": processes}
        self._record({**row, "rate": rate, "errors": errors})

    def ceiling(self, clients: int, commits: str) -> None:
        self._probe()
        with self.database("postgres") as url:
            prepare_ceiling(url, rows=int(8_000 * self.plan.seconds) + 10_000)
            rate = run_ceiling(url, clients=clients, seconds=self.plan.seconds, commits=commits)
        row = {"section": "ceiling", "system": f"sql-{commits}-commit", "db": "postgres"}
        self._record({**row, "n": clients, "rate": rate})

    def scale(self, kind: str, size: int, same_experiment: bool, pruned: bool = False) -> None:
        """Cycles in an experiment (or beside one) that already has `size` finished tasks;
        `pruned`: every heartbeat carries metrics and the experiment has a median pruner."""

        def prepare(url: str, experiment_id: int) -> None:
            insert_history(
                url, bench_experiment_id=experiment_id, count=size, same_experiment=same_experiment
            )

        pruner = MEDIAN_PRUNER if pruned else None
        row = self._cycles("scale", kind, self.plan.scale_workers, prepare=prepare, pruner=pruner)
        row.update(history=size, where="same" if same_experiment else "other")
        row["heartbeats"] = "metrics, median pruner" if pruned else "plain"
        self._record(row)

    def idle(self, kind: str) -> None:
        self._probe()
        plan = self.plan
        with self.database(kind) as url, running_server(url, self.scratch / "server.log") as server:
            stats = asyncio.run(
                run_idle(
                    server.url,
                    workers=plan.idle_workers,
                    ramp=min(5.0, plan.idle_seconds / 4),
                    seconds=plan.idle_seconds,
                    probes=plan.idle_probes,
                    cpu=server.cpu_seconds,
                    rss=server.rss_mb,
                )
            )
        row = {"section": "idle", "system": "morphml", "db": kind, "n": plan.idle_workers}
        row.update(
            seconds=plan.idle_seconds,
            cpu_percent=100 * stats.cpu_seconds / plan.idle_seconds,
            max_rss_mb=stats.max_rss_mb,
            wake_ms=stats.wake_ms,
            wake_cpu_s=stats.wake_cpu_seconds,
        )
        self._record(row)


def _cycle_row(
    section: str, kind: str, workers: int, stats: Any, cpu: float, seconds: float, peak: float
) -> Row:
    row: Row = {"section": section, "system": "morphml", "db": kind, "n": workers}
    row["rate"] = stats.cycles / seconds
    row["cpu_ms_per_cycle"] = 1000 * cpu / stats.cycles if stats.cycles else float("nan")
    row["peak_rss_mb"] = peak
    for name, values in stats.latency_ms.items():
        row[name] = [round(percentile(values, q), 2) for q in (50, 95, 99)]
    return row


def run_plan(bench: Bench) -> None:
    """Interleaved: for each N, ours then Optuna on each database, then the journal file."""
    for workers in bench.plan.workers:
        _throughput_round(bench, workers)
    for clients in bench.plan.ceiling_clients:
        for commits in ("two", "one"):
            bench.ceiling(clients, commits)
    for kind in bench.plan.databases:
        bench.ours(kind, bench.plan.paced_workers, bench.plan.paced_eval_seconds)
    for kind in bench.plan.databases:
        _scale_round(bench, kind)
    for kind in bench.plan.databases:
        bench.idle(kind)


def _throughput_round(bench: Bench, workers: int) -> None:
    rivals = workers in bench.plan.rival_workers
    for kind in bench.plan.databases:
        bench.ours(kind, workers)
        if rivals:
            bench.optuna(kind, "rdb", workers)
    if rivals:
        bench.optuna("file", "journal", workers)


def _scale_round(bench: Bench, kind: str) -> None:
    for size in bench.plan.scale_sizes:
        bench.scale(kind, size, same_experiment=True)
    for size in bench.plan.scale_sizes:
        bench.scale(kind, size, same_experiment=True, pruned=True)
    if bench.plan.scale_other:
        bench.scale(kind, bench.plan.scale_sizes[-1], same_experiment=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--smoke", action="store_true", help="a few seconds, SQLite only")
    parser.add_argument("--out", type=Path, help="write the raw rows here as JSON")
    args = parser.parse_args(argv)
    raise_fd_limit()
    started = time.perf_counter()
    with scratch_dir() as scratch:
        bench = Bench(SMOKE if args.smoke else FULL, scratch)
        run_plan(bench)
    if args.out is not None:
        args.out.write_text(json.dumps(bench.rows, indent=1, default=str))
    print(cp_report.markdown(bench.rows))
    print(f"\n(total {time.perf_counter() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
