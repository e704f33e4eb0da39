"""Evaluators: what a worker runs for one task, named by `kind` in the experiment spec.

`check_evaluator(kind, params, space)` refuses, at submit time, what a worker could not run; the
parameters every kind takes are declared once in `morphml.evaluators.params`.
"""

from morphml.evaluators.base import (
    EVALUATOR_KINDS,
    Evaluator,
    EvaluatorError,
    Report,
    get_evaluator,
)
from morphml.evaluators.params import (
    EVALUATOR_PARAMS,
    IMAGE_DATASETS,
    check_evaluator,
    parse_params,
)

__all__ = [
    "EVALUATOR_KINDS",
    "EVALUATOR_PARAMS",
    "IMAGE_DATASETS",
    "Evaluator",
    "EvaluatorError",
    "Report",
    "check_evaluator",
    "get_evaluator",
    "parse_params",
]
