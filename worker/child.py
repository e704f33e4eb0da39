"""The child process that evaluates one task: `python -m worker.child TASK_DIR`.

It reads `spec.json` (architecture, budget, evaluator), appends each intermediate report to
`progress.jsonl` and writes `result.json`: `{"metrics": {...}}` or `{"error", "retryable"}`.
Running here rather than in the agent is what lets a crash, OOM or hang fail one task only.
"""

from __future__ import annotations

import json
import math
import os
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

from morphml.architecture import Architecture
from morphml.errors import MorphMLError
from morphml.evaluators import get_evaluator

MAX_ERROR_CHARS = 2000
PARENT_CHECK_SECONDS = 1.0


def main(argv: list[str] | None = None) -> int:
    task_dir = Path((argv if argv is not None else sys.argv[1:])[0])
    _exit_with_parent()
    try:
        metrics = evaluate_spec(json.loads((task_dir / "spec.json").read_text()), task_dir)
    except BaseException as exc:  # everything the evaluator raises is reported, even SystemExit
        traceback.print_exc()
        _write_json(task_dir / "result.json", {"error": describe(exc), "retryable": retryable(exc)})
        return 1
    _write_json(task_dir / "result.json", {"metrics": metrics})
    return 0


def evaluate_spec(spec: dict[str, Any], task_dir: Path) -> dict[str, float]:
    architecture = Architecture.from_dict(spec["architecture"])
    evaluator = get_evaluator(spec["evaluator"]["kind"])
    progress = (task_dir / "progress.jsonl").open("a")

    def report(metrics: dict[str, float]) -> None:
        # Intermediate values that JSON cannot carry (nan, inf) are left out, not fatal.
        clean = {k: float(v) for k, v in metrics.items() if _is_number(v) and math.isfinite(v)}
        progress.write(json.dumps({"time": time.time(), "metrics": clean}) + "\n")
        progress.flush()

    with progress:
        raw = evaluator(
            architecture, spec.get("budget"), spec["evaluator"].get("params") or {}, report
        )
    return final_metrics(raw)


def final_metrics(raw: Any) -> dict[str, float]:
    """Check an evaluator's result: a dict of finite numbers (a nan accuracy is not a result)."""
    if not isinstance(raw, dict):
        raise MorphMLError(
            f"the evaluator returned {type(raw).__name__}, expected a dict of metrics"
        )
    metrics = {}
    for name, value in raw.items():
        if not _is_number(value) or not math.isfinite(value):
            raise MorphMLError(f"metric {name!r} is {value!r}, expected a finite number")
        metrics[str(name)] = float(value)
    return metrics


def retryable(exc: BaseException) -> bool:
    """Bad input fails for good; anything else (OOM, a flaky crash) may succeed elsewhere."""
    if isinstance(exc, SystemExit):
        return exc.code not in (0, None)
    return not isinstance(exc, MorphMLError)


def describe(exc: BaseException) -> str:
    """The error text the server records: type, message and where it was raised."""
    text = f"{type(exc).__name__}: {exc}"
    frames = traceback.extract_tb(exc.__traceback__)
    if frames:
        last = frames[-1]
        text += f" (at {Path(last.filename).name}:{last.lineno})"
    return text[:MAX_ERROR_CHARS]


def _exit_with_parent() -> None:
    """Exit when the agent dies (even by SIGKILL): an orphan would keep a GPU busy for nothing.

    The child runs in its own session, so the agent's process group signals do not reach it.
    """
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_CHECK_SECONDS)
        os._exit(70)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _write_json(path: Path, payload: dict[str, Any]) -> None:
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(payload))
    os.replace(temporary, path)


if __name__ == "__main__":
    sys.exit(main())
