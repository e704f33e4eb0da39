"""The `python` evaluator: a user function `package.module:function`, if the worker allows it.

Params: `{"function": "package.module:function", ...}`; every other key is passed on to the
function as its `params`. A worker runs user code only for modules under a prefix of its
allow-list (`morphml-worker --allow package`), which reaches this process as `MORPHML_ALLOW`
(comma-separated); an empty list allows nothing. A refusal is bad input, so it is not retried.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from typing import Any

from morphml.architecture import Architecture
from morphml.evaluators.base import EvaluatorError, Report
from morphml.evaluators.params import parse_params

ALLOW_ENV = "MORPHML_ALLOW"


def evaluate(
    architecture: Architecture, budget: float | None, params: dict[str, Any], report: Report
) -> dict[str, float]:
    function = resolve_function(params)
    user_params = {k: v for k, v in params.items() if k != "function"}
    result: dict[str, float] = function(architecture, budget, user_params, report)
    return result


def resolve_function(params: dict[str, Any]) -> Callable[..., Any]:
    """The user's function, its module imported (once per process: a warm evaluation process
    keeps it, and whatever it holds at module level, from one task to the next)."""
    target: str = parse_params("python", params)["function"]
    module_name, _, function_name = target.partition(":")
    allowed = allow_list()
    if not is_allowed(module_name, allowed):
        raise EvaluatorError(
            f"evaluator.params.function: module {module_name!r} is not on this worker's allow-list "
            f"({', '.join(allowed) or 'empty'}); start the worker with --allow {module_name}"
        )
    function: Callable[..., Any] | None = getattr(
        importlib.import_module(module_name), function_name, None
    )
    if not callable(function):
        raise EvaluatorError(f"evaluator.params.function: {target!r} is not a callable")
    return function


def allow_list() -> list[str]:
    return [part.strip() for part in os.environ.get(ALLOW_ENV, "").split(",") if part.strip()]


def is_allowed(module_name: str, allowed: list[str]) -> bool:
    """A prefix allows the module itself and its submodules: `pkg` allows `pkg.sub`, not `pkgx`."""
    return any(module_name == prefix or module_name.startswith(prefix + ".") for prefix in allowed)
