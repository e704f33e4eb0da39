"""The evaluation process of one slot: `python -m worker.child CMD_FD REPLY_FD`.

It serves tasks one after another: each line on the command pipe names a task dir holding the
task's `spec.json` (architecture, budget, evaluator, the candidate's `meta`); the process
evaluates it there, with its stdout and stderr in the task's `child.log`, and answers on the
reply pipe with one JSON line per intermediate report (`{"report": {...}}`), one per file to
upload (`{"checkpoint": {...}}`, `{"artifact": {...}}`: `morphml.evaluators.context`) and one
with the result (`{"result": {"metrics": ...}}` or `{"result": {"error", "retryable"}}`, plus
`rss_mb`, its resident memory after the task). A spec may name the files the task starts from
(`checkpoint`, `warm_start`: local paths the agent downloaded); the evaluator finds them in its
context. It exits at the end of the command pipe (the agent retired it) or when the agent dies.

Imports, the CUDA context and cached datasets stay from one task to the next; what must not carry
over is reset at the start of each task (`seed_everything`) and after it (`release_memory`), so
that a task's metrics are those a fresh process would give. Running here rather than in the agent
is what lets a crash, OOM or hang fail one task only.
"""

from __future__ import annotations

import contextlib
import gc
import importlib.abc
import importlib.util
import json
import math
import os
import random
import resource
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from importlib.machinery import ModuleSpec
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from morphml.architecture import Architecture
from morphml.errors import MorphMLError
from morphml.evaluators import context, get_evaluator
from morphml.evaluators.python_entry import resolve_function

MAX_ERROR_CHARS = 2000
PARENT_CHECK_SECONDS = 1.0
DEFAULT_SEED = 0

Send = Callable[[dict[str, Any]], None]


def main(argv: list[str] | None = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    commands, replies = int(args[0]), int(args[1])
    _exit_with_parent()
    send = _sender(replies)
    home = os.getcwd()
    with os.fdopen(commands, "rb") as lines:
        for line in lines:
            task_dir = Path(json.loads(line)["task_dir"])
            result = run_task(task_dir, send)
            send({"result": result, "rss_mb": rss_mb()})
            os.chdir(home)
    # The agent closed the command pipe: retired. A thread of user code must not keep us alive.
    sys.stdout.flush()
    os._exit(0)


def run_task(task_dir: Path, send: Send) -> dict[str, Any]:
    """The task's result as the agent receives it; output goes to the task's `child.log`."""
    with _output_to(task_dir / "child.log"):
        try:
            os.chdir(task_dir)
            spec = json.loads((task_dir / "spec.json").read_text())
            with context.bound(task_context(task_dir, spec, send)):
                metrics = evaluate_spec(spec, lambda report: send({"report": report}))
        except BaseException as exc:  # everything the evaluator raises is reported, even SystemExit
            traceback.print_exc()
            return {"error": describe(exc), "retryable": retryable(exc)}
        finally:
            release_memory()
    return {"metrics": metrics}


def task_context(task_dir: Path, spec: dict[str, Any], send: Send) -> context.TaskContext:
    """What the evaluator's `morphml.evaluators.context` says for this task."""
    checkpoint, warm_start = (spec.get(key) for key in ("checkpoint", "warm_start"))
    meta = spec.get("meta")
    return context.TaskContext(
        task_dir,
        send,
        checkpoint=Path(checkpoint) if checkpoint else None,
        warm_start=Path(warm_start) if warm_start else None,
        meta=meta if isinstance(meta, dict) else {},
    )


def evaluate_spec(spec: dict[str, Any], send_report: Send) -> dict[str, float]:
    architecture = Architecture.from_dict(spec["architecture"])
    kind, params = spec["evaluator"]["kind"], spec["evaluator"].get("params") or {}
    evaluator = get_evaluator(kind)  # imports its module (torch for train and proxy) first...
    if kind == "python":
        resolve_function(params)  # ...and the user's module, so that its imports get seeded too
    seed_everything(params.get("seed"))

    def report(metrics: dict[str, float]) -> None:
        # Intermediate values that JSON cannot carry (nan, inf) are left out, not fatal.
        clean = {k: float(v) for k, v in metrics.items() if _is_number(v) and math.isfinite(v)}
        send_report(clean)

    raw = evaluator(architecture, spec.get("budget"), params, report)
    return final_metrics(raw)


def seed_everything(seed: Any) -> None:
    """Reset the global random state of every library the task can use, so that a task in a warm
    process draws what it would in a fresh one: Python's `random`, NumPy's global generator,
    torch's CPU and CUDA generators (`seed`, or 0) and cuDNN's algorithm choice (deterministic,
    no autotuning). torch is seeded now if imported, else the moment the task imports it."""
    value = seed if isinstance(seed, int) and not isinstance(seed, bool) and seed >= 0 else None
    value = DEFAULT_SEED if value is None else value
    random.seed(value)
    np.random.seed(value % 2**32)
    torch = sys.modules.get("torch")
    if torch is not None:
        _seed_torch(torch, value)
    else:
        _TORCH_HOOK.seed = value
        if _TORCH_HOOK not in sys.meta_path:
            sys.meta_path.insert(0, _TORCH_HOOK)


def _seed_torch(torch: Any, value: int) -> None:
    torch.manual_seed(value)  # seeds the CUDA generators as well
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False


class _SeedTorchOnImport(importlib.abc.MetaPathFinder):
    """Seeds torch right after its first import, for an evaluator that imports it lazily (torch
    seeds itself from the OS otherwise). It finds nothing itself: it wraps torch's loader."""

    seed = DEFAULT_SEED

    def find_spec(self, name: str, path: Any, target: Any = None) -> ModuleSpec | None:
        if name != "torch":
            return None
        sys.meta_path.remove(self)  # once, and no recursion into the search below
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None:
            execute = spec.loader.exec_module

            def exec_and_seed(module: ModuleType) -> None:
                execute(module)
                _seed_torch(module, self.seed)

            spec.loader.exec_module = exec_and_seed  # type: ignore[method-assign]
        return spec


_TORCH_HOOK = _SeedTorchOnImport()


def release_memory() -> None:
    """Give back what the last task held: its objects (cycles included: a model's often are,
    and they hold GPU memory), and the GPU memory torch caches.

    What survives a full collection right after a task is live: modules, cached datasets and
    tables. It is frozen (`gc.freeze`) so that later collections skip it: a full collection over
    a loaded NAS-Bench-201 table took 46 ms, per task. Frozen objects that later die in a
    reference cycle are not reclaimed; the process's memory ceiling recycles it if that grows.
    """
    gc.collect()
    gc.freeze()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.empty_cache()


def rss_mb() -> float | None:
    """This process's resident memory now, in MiB (Linux), or None."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return None
    return pages * resource.getpagesize() / 2**20


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


@contextlib.contextmanager
def _output_to(path: Path) -> Iterator[None]:
    """File descriptors 1 and 2 (print, warnings, C extensions) into `path` for the block."""
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    saved = [os.dup(1), os.dup(2)]
    try:
        with path.open("ab") as log_file:
            os.dup2(log_file.fileno(), 1)
            os.dup2(log_file.fileno(), 2)
        yield
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):  # user code may have replaced or closed them
                stream.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in saved:
            os.close(fd)


def _sender(fd: int) -> Send:
    """One JSON line per message on the reply pipe; whole lines even from several threads."""
    lock = threading.Lock()

    def send(message: dict[str, Any]) -> None:
        data = json.dumps(message).encode() + b"\n"
        with lock:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]

    return send


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


if __name__ == "__main__":
    sys.exit(main())
