"""Ray Tune: trivial trials, C at a time on a local Ray; prints one JSON line (trials, seconds).

Run by bench/e2e_rivals.py in a process of its own, so Ray's cluster starts and stops with it:

    .venv/bin/python -m bench.e2e_ray --trials 200 --concurrency 4 --storage /tmp/ray-bench

Each trial stamps its own start and end (time.time()); the rate is trials / (last end - first
start), as for MorphML and Optuna. Ray's defaults otherwise (a fresh actor per trial).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from typing import Any


def objective(config: dict[str, Any]) -> dict[str, float]:
    started = time.time()
    x = float(config["x"])
    return {"loss": x * x, "started": started, "ended": time.time()}


def run(trials: int, concurrency: int, storage: str, reuse: bool) -> dict[str, float]:
    import ray
    from ray import tune

    # Its session files in a directory of its own (not the shared /tmp/ray), removed afterwards;
    # a short path, since Ray's socket paths must fit in 107 bytes.
    temp = tempfile.mkdtemp(prefix="rayb-", dir="/tmp")
    ray.init(num_cpus=concurrency, include_dashboard=False, log_to_driver=False, _temp_dir=temp)
    try:
        tuner = tune.Tuner(
            tune.with_resources(objective, {"cpu": 1}),
            param_space={"x": tune.uniform(-1.0, 1.0)},
            tune_config=tune.TuneConfig(
                metric="loss",
                mode="min",
                num_samples=trials,
                max_concurrent_trials=concurrency,
                reuse_actors=reuse,
            ),
            run_config=tune.RunConfig(name="e2e", storage_path=storage, verbose=0),
        )
        grid = tuner.fit()
    finally:
        ray.shutdown()
        shutil.rmtree(temp, ignore_errors=True)
    results = [grid[index] for index in range(len(grid))]
    done = [r.metrics for r in results if r.error is None and r.metrics and "ended" in r.metrics]
    seconds = max(m["ended"] for m in done) - min(m["started"] for m in done) if done else 0.0
    return {"trials": len(done), "seconds": seconds, "errors": len(grid.errors)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--trials", type=int, required=True)
    parser.add_argument("--concurrency", type=int, required=True)
    parser.add_argument("--storage", required=True, help="directory for Tune's results")
    parser.add_argument("--reuse-actors", action="store_true", help="Tune's warm path")
    args = parser.parse_args(argv)
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    answer = run(args.trials, args.concurrency, os.path.abspath(args.storage), args.reuse_actors)
    print(json.dumps(answer), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
