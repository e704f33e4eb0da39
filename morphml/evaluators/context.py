"""What an evaluator running on a worker can ask of it: the checkpoint to resume from, and the
files to send home (checkpoints, final weights, anything else worth keeping).

```python
from morphml.evaluators import context

start = 0
if (path := context.checkpoint()) is not None:  # a resumed attempt: the last one's checkpoint
    start = load(path) + 1
for epoch in range(start, epochs):
    ...
    save(f"checkpoint-{epoch}.pt")
    context.save_checkpoint(f"checkpoint-{epoch}.pt", epoch)  # uploaded while training goes on
context.save_artifact("confusion.csv", "confusion.csv")  # kept with the task's results
```

The worker uploads a saved checkpoint in the background (a newer one supersedes one not yet
sent) and the other files once the task has completed, before its result is posted. A file is
read when it is uploaded, so write each checkpoint to a new path or replace it atomically
(write elsewhere, then `os.replace`). Outside a worker (a plain Python call) `checkpoint()` and
`warm_start()` are None, `meta()` is {} and the `save_*` calls do nothing.

`meta()` is the optimizer's `meta` of the running task's candidate (e.g. the `weight_sharing`
optimizer's `{"phase": "supernet", ...}`): what an evaluator needs to know about the task that
the architecture and budget do not say.

The worker's evaluation process binds a `TaskContext` around each task (`bound`); each `save_*`
is one message on its reply pipe to the agent (`{"checkpoint": {...}}`, `{"artifact": {...}}`).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from morphml.evaluators.base import EvaluatorError
from morphml.wire import ARTIFACT_NAME_PATTERN

# The names the server's artifact store takes (and the one it gives a task's checkpoint).
NAME_PATTERN = re.compile(ARTIFACT_NAME_PATTERN)
CHECKPOINT_NAME = "checkpoint.pt"
WEIGHTS_NAME = "weights.pt"
# Where files saved from outside the task dir are copied (the agent uploads only from there).
COPIES_DIR = "artifacts"

Send = Callable[[dict[str, Any]], None]
PathLike = str | os.PathLike[str]


@dataclass(frozen=True)
class TaskContext:
    """The running task as its evaluator sees it: its dir, the files it starts from, the pipe."""

    task_dir: Path
    send: Send
    checkpoint: Path | None = None
    warm_start: Path | None = None
    meta: dict[str, Any] = field(default_factory=dict)


_current: TaskContext | None = None


def checkpoint() -> Path | None:
    """The local copy of the task's latest checkpoint from an earlier attempt, or None (a first
    attempt, or none could be fetched: then start from scratch)."""
    return _current.checkpoint if _current is not None else None


def warm_start() -> Path | None:
    """A promoted task's (ASHA, Hyperband) lower-rung final weights, or None."""
    return _current.warm_start if _current is not None else None


def meta() -> dict[str, Any]:
    """The running task's candidate `meta` (a copy: the evaluator cannot change it for the next
    caller), or {} outside a worker or when the candidate has none."""
    return dict(_current.meta) if _current is not None else {}


def save_checkpoint(path: PathLike, epoch: int) -> None:
    """Upload `path` as the task's checkpoint after `epoch`: a later attempt of this task (on
    any worker) gets it from `checkpoint()`."""
    if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
        raise EvaluatorError(f"save_checkpoint: epoch must be an integer >= 0, got {epoch!r}")
    _send("checkpoint", {"name": CHECKPOINT_NAME, "path": _in_task_dir(path, CHECKPOINT_NAME),
                         "epoch": epoch})  # fmt: skip


def save_artifact(name: str, path: PathLike) -> None:
    """Keep the file at `path` with the task's results, as `name` (letters, digits, `._-`, at
    most 128, starting with a letter or digit); uploaded once the task has completed."""
    _send("artifact", {"name": check_name(name), "path": _in_task_dir(path, name),
                       "kind": "file"})  # fmt: skip


def save_weights(path: PathLike) -> None:
    """The trained model's final `state_dict`, kept as the task's `weights.pt` (the `train`
    evaluator calls this)."""
    _send("artifact", {"name": WEIGHTS_NAME, "path": _in_task_dir(path, WEIGHTS_NAME),
                       "kind": "weights"})  # fmt: skip


def active() -> bool:
    """True inside a worker's task (saving a file then sends it somewhere)."""
    return _current is not None


def check_name(name: str) -> str:
    if not isinstance(name, str) or NAME_PATTERN.fullmatch(name) is None:
        raise EvaluatorError(
            f"artifact name {name!r}: use 1-128 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


@contextlib.contextmanager
def bound(task: TaskContext) -> Iterator[None]:
    """`task` is the current one for the block (the worker's evaluation process calls this)."""
    global _current
    _current = task
    try:
        yield
    finally:
        _current = None


def _send(kind: str, body: dict[str, Any]) -> None:
    if _current is not None:
        _current.send({kind: body})


def _in_task_dir(path: PathLike, name: str) -> str:
    """`path`, absolute; a file outside the task dir is copied in first (the agent uploads only
    what is under the task dir, so an evaluator cannot have it send the worker's own files)."""
    if _current is None:
        return str(path)
    source = Path(path).resolve()
    if not source.is_file():
        raise EvaluatorError(f"cannot save {str(path)!r}: not a file")
    task_dir = _current.task_dir.resolve()
    if source.is_relative_to(task_dir):
        return str(source)
    copy = task_dir / COPIES_DIR / name
    copy.parent.mkdir(exist_ok=True)
    shutil.copyfile(source, copy)
    return str(copy)
