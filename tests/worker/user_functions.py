"""User functions for the `python` evaluator in worker tests (allowed as `tests.worker`)."""

from __future__ import annotations

import os
import time
from typing import Any


def good(
    architecture: Any, budget: float | None, params: dict[str, Any], report: Any
) -> dict[str, float]:
    report({"step": 1, "progress": 0.5, "val_accuracy": 0.5})
    time.sleep(float(params.get("sleep", 0)))
    return {"val_accuracy": 0.75, "num_params": architecture.num_params, "budget": budget or 0.0}


def raises(
    architecture: Any, budget: float | None, params: dict[str, Any], report: Any
) -> dict[str, float]:
    raise RuntimeError("boom in user code")


def exits(
    architecture: Any, budget: float | None, params: dict[str, Any], report: Any
) -> dict[str, float]:
    os._exit(3)


def sleeps(
    architecture: Any, budget: float | None, params: dict[str, Any], report: Any
) -> dict[str, float]:
    time.sleep(600)
    return {}


def returns_nan(
    architecture: Any, budget: float | None, params: dict[str, Any], report: Any
) -> dict[str, float]:
    return {"val_accuracy": float("nan")}


CALLS = {"count": 0}


def counts_calls(
    architecture: Any, budget: float | None, params: dict[str, Any], report: Any
) -> dict[str, float]:
    """Module state outlives a task in a warm process: the count goes up task after task."""
    CALLS["count"] += 1
    return {"calls": float(CALLS["count"]), "pid": float(os.getpid())}


def draws(
    architecture: Any, budget: float | None, params: dict[str, Any], report: Any
) -> dict[str, float]:
    """Numbers from every global generator, never seeded here: the worker seeds them."""
    import random

    import numpy as np
    import torch

    return {
        "random": random.random(),
        "numpy": float(np.random.rand()),
        "torch": float(torch.rand(1).item()),
        "pid": float(os.getpid()),
    }


def grows(
    architecture: Any, budget: float | None, params: dict[str, Any], report: Any
) -> dict[str, float]:
    """Keeps 64 MiB alive at module level, as a leaking user function would."""
    LEAK.append(bytearray(64 * 2**20))
    return {"pid": float(os.getpid())}


LEAK: list[bytearray] = []


def prints(
    architecture: Any, budget: float | None, params: dict[str, Any], report: Any
) -> dict[str, float]:
    print(f"hello from task {params['n']}", flush=True)
    raise RuntimeError(f"failed task {params['n']}")


def resumes(
    architecture: Any, budget: float | None, params: dict[str, Any], report: Any
) -> dict[str, float]:
    """Uses the context as a resumable evaluator would: its checkpoint holds the last epoch."""
    from pathlib import Path

    from morphml.evaluators import context

    start = 0
    if (checkpoint := context.checkpoint()) is not None:
        start = int(checkpoint.read_text())
    for epoch in range(start + 1, int(budget or 2) + 1):
        Path(f"state-{epoch}").write_text(str(epoch))
        context.save_checkpoint(f"state-{epoch}", epoch)
    notes = Path(params.get("notes_dir", ".")) / "notes.txt"
    notes.write_text("kept")
    context.save_artifact("notes.txt", notes)
    return {"resumed_from_epoch": float(start)}
