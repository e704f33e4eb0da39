"""The server's surrogate fits on two BLAS threads against one, on a loaded machine.

    .venv/bin/python -m bench.blas_threads --fits 40 --busy 2

The default optimizer (`surrogate`: a Gaussian process in numpy) is told `--points` outcomes on
NAS-Bench-201's cell space, then each round times, for 2 and then 1 BLAS threads (the order
alternates from round to round): the GP fit with its hyperparameter grid (`fit(tune=True)`, what
a refill pays every few outcomes) and one `ask` (fit, predict over the candidate pool, pick), as
the server's refill thread runs them. Meanwhile `--busy` processes spin on the CPU, as the
server's request threads and workers do on a shared box. Wall time is `perf_counter`; CPU time
is the process's (`process_time`: BLAS's own threads included). The load average is recorded
before and after.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

from morphml.optimizers import Candidate, Outcome, make_optimizer
from morphml.optimizers._gp import GaussianProcess
from morphml.optimizers.surrogate import SurrogateSearch
from morphml.space import space_from_dict
from morphml.wire import NB201_CELL_SPACE

PAUSE_SECONDS = 0.2
OBJECTIVES = [{"metric": "val_accuracy", "direction": "maximize"}]


def spin() -> None:
    while True:
        pass


def told_surrogate(points: int, seed: int = 0) -> SurrogateSearch:
    """The server's default optimizer after `points` outcomes (made-up accuracies)."""
    space = space_from_dict(NB201_CELL_SPACE)
    optimizer = make_optimizer("surrogate", space, objectives=OBJECTIVES, seed=seed)
    assert isinstance(optimizer, SurrogateSearch)
    rng = random.Random(seed)
    while optimizer.told < points:
        for candidate in optimizer.ask(min(20, points - optimizer.told)):
            accuracy = 0.5 + 0.4 * rng.random()
            optimizer.tell(candidate, {"val_accuracy": accuracy}, Outcome.COMPLETED)
    return optimizer


def gp_fit(optimizer: SurrogateSearch) -> Callable[[], Any]:
    told = optimizer.completed()[-optimizer.max_points :]
    x = optimizer.encoder.encode([r["config"] for r in told])
    y = np.array([r["score"] for r in told])
    return lambda: GaussianProcess().fit(x, y, tune=True)


def one_ask(optimizer: SurrogateSearch) -> Callable[[], Any]:
    state = optimizer.state_dict()

    def ask() -> list[Candidate]:
        optimizer.load_state_dict(state)  # every ask starts from the same state
        optimizer.tuned_at = -(10**9)  # and retunes, as the refill after a few outcomes does
        return optimizer.ask(1)

    return ask


def timed(call: Callable[[], Any], threads: int) -> tuple[float, float]:
    # OpenBLAS's threads spin a while after a call: let them stop, or the CPU they burn after a
    # two-thread call would be counted against the next one.
    time.sleep(PAUSE_SECONDS)
    with threadpool_limits(limits=threads, user_api="blas"):
        wall, cpu = time.perf_counter(), time.process_time()
        call()
        return time.perf_counter() - wall, time.process_time() - cpu


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--fits", type=int, default=40, help="rounds (each: 2 then 1, or 1 then 2)")
    parser.add_argument("--points", type=int, default=300, help="outcomes told first")
    parser.add_argument("--busy", type=int, default=2, help="spinning processes meanwhile")
    parser.add_argument("--out", help="write the raw timings here as JSON")
    args = parser.parse_args(argv)
    optimizer = told_surrogate(args.points)
    calls = {"gp fit (tune)": gp_fit(optimizer), "ask (fit + pool)": one_ask(optimizer)}
    busy = [multiprocessing.Process(target=spin, daemon=True) for _ in range(args.busy)]
    for process in busy:
        process.start()
    time.sleep(2.0)  # let the load settle
    load_before = os.getloadavg()
    samples: dict[tuple[str, int], list[tuple[float, float]]] = {}
    try:
        for round_ in range(args.fits):
            order = (2, 1) if round_ % 2 == 0 else (1, 2)
            for name, call in calls.items():
                for threads in order:
                    samples.setdefault((name, threads), []).append(timed(call, threads))
    finally:
        for process in busy:
            process.terminate()
    load_after = os.getloadavg()
    print(f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f}")
    print("| call | BLAS threads | wall p50 ms | wall p99 ms | CPU ms / call (mean) |")
    print("|---|---|---|---|---|")
    for (name, threads), timings in samples.items():
        walls = [1000 * wall for wall, _ in timings]
        cpus = [1000 * cpu for _, cpu in timings]
        print(
            f"| {name} | {threads} | {percentile(walls, 50):.1f} | {percentile(walls, 99):.1f} "
            f"| {statistics.fmean(cpus):.1f} |"
        )
    if args.out:
        raw = {f"{name}|{threads}": timings for (name, threads), timings in samples.items()}
        with open(args.out, "w") as out:
            json.dump({"load": [load_before, load_after], "samples": raw}, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
