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
