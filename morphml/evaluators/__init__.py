"""Evaluators: what a worker runs for one task, named by `kind` in the experiment spec."""

from morphml.evaluators.base import (
    EVALUATOR_KINDS,
    Evaluator,
    EvaluatorError,
    Report,
    get_evaluator,
)

__all__ = ["EVALUATOR_KINDS", "Evaluator", "EvaluatorError", "Report", "get_evaluator"]
