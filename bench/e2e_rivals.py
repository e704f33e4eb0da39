"""Workers end to end, the rivals: Optuna `RDBStorage` and Ray Tune running the same trial count.

Both are timed the way MorphML is (bench/e2e_cluster.py): trials / (last trial finished - first
trial started), from the rival's own records, so process and cluster start-up are left out.
- Optuna: P processes (spawned together behind a barrier) each run `study.optimize` with a
  trivial objective on one RDB study (a SQLite file, or a Postgres database).
- Ray Tune: its own process (`python -m bench.e2e_ray`), a local Ray with C CPUs, C concurrent
  trials of a trivial function trainable, with `reuse_actors` (Tune's default, a fresh actor
  per trial, ran 0.4 trials/s at 2 concurrent here: too slow to run N trials in a bench).
"""

from __future__ import annotations

import json
import multiprocessing
import subprocess
import sys
from dataclasses import dataclass
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any

from bench.cp_rivals import optuna_storage, optuna_url


@dataclass(frozen=True)
class RivalResult:
    trials: int
    seconds: float
    errors: int

    @property
    def rate(self) -> float:
        return self.trials / self.seconds if self.seconds > 0 else float("nan")


def _objective(trial: Any) -> float:
    x: float = trial.suggest_float("x", -1.0, 1.0)
    return x * x


def _optimize_share(url: str, share: int, start: Barrier, out: multiprocessing.Queue[int]) -> None:
    """Run `share` trials in this process; a storage error (SQLite's "database is locked")
    is counted and the remaining trials are run again, as a user's retry would."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name="e2e", storage=optuna_storage("rdb", url))
    finished = [0]

    def count(_study: Any, _trial: Any) -> None:
        finished[0] += 1

    start.wait()
    errors = 0
    while finished[0] < share and errors < 100:
        try:
            study.optimize(_objective, n_trials=share - finished[0], callbacks=[count])
        except Exception:
            errors += 1
    out.put(errors)


def run_optuna(database_url: str, *, processes: int, trials: int) -> RivalResult:
    """`trials` split over `processes` spawned processes on a fresh study at `database_url`."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url = optuna_url(database_url)
    optuna.create_study(study_name="e2e", storage=optuna_storage("rdb", url))
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(processes + 1)
    out: multiprocessing.Queue[int] = context.Queue()
    shares = [trials // processes + (i < trials % processes) for i in range(processes)]
    children = [
        context.Process(target=_optimize_share, args=(url, share, start, out)) for share in shares
    ]
    for child in children:
        child.start()
    start.wait(timeout=120)
    errors = sum(out.get(timeout=600) for _ in children)
    for child in children:
        child.join()
    return _optuna_span(url, errors)


def _optuna_span(url: str, errors: int) -> RivalResult:
    import optuna

    study = optuna.load_study(study_name="e2e", storage=optuna_storage("rdb", url))
    done = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    starts = [t.datetime_start for t in done if t.datetime_start is not None]
    ends = [t.datetime_complete for t in done if t.datetime_complete is not None]
    seconds = (max(ends) - min(starts)).total_seconds() if starts and ends else float("nan")
    return RivalResult(len(done), seconds, errors)


def ray_available() -> bool:
    try:
        import ray.tune  # noqa: F401
    except ImportError:
        return False
    return True


def run_ray(*, concurrency: int, trials: int, work_dir: Path, timeout: float) -> RivalResult:
    """Ray Tune in its own process (its cluster starts and stops with it), actors reused."""
    command = [sys.executable, "-m", "bench.e2e_ray", "--trials", str(trials)]
    command += ["--concurrency", str(concurrency), "--storage", str(work_dir), "--reuse-actors"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"ray tune failed ({done.returncode}): {done.stderr[-2000:]}")
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    return RivalResult(int(answer["trials"]), float(answer["seconds"]), int(answer["errors"]))
