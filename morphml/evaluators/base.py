"""The evaluator interface and registry.

An evaluator is `fn(architecture, budget, params, report) -> metrics`: it evaluates one candidate
for `budget` (e.g. epochs; None means its default), calls `report(metrics)` with intermediate
metrics (e.g. per-epoch validation accuracy), and returns the final metrics. Implementations are
imported lazily by name so that naming a kind (as the server does to validate a spec) never
imports torch.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any, TypeAlias

from morphml.architecture import Architecture
from morphml.errors import MorphMLError

Report: TypeAlias = Callable[[dict[str, float]], None]
Evaluator: TypeAlias = Callable[
    [Architecture, float | None, dict[str, Any], Report], dict[str, float]
]


class EvaluatorError(MorphMLError):
    """Unknown evaluator kind or bad evaluator parameters."""


# kind -> "module:function", imported only when a worker runs the kind.
EVALUATOR_KINDS: dict[str, str] = {
    "train": "morphml.evaluators.train:evaluate",
    "tabular": "morphml.evaluators.tabular:evaluate",
    "proxy": "morphml.evaluators.proxy:evaluate",
    "python": "morphml.evaluators.python_entry:evaluate",
}


def get_evaluator(kind: str) -> Evaluator:
    target = EVALUATOR_KINDS.get(kind)
    if target is None:
        raise EvaluatorError(
            f"evaluator.kind: unknown kind {kind!r}; known: {sorted(EVALUATOR_KINDS)}"
        )
    module_name, _, function = target.partition(":")
    evaluator: Evaluator = getattr(importlib.import_module(module_name), function)
    return evaluator
