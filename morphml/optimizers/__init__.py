"""Ask/tell optimizers with JSON state; `make_optimizer` builds one by name."""

from morphml.optimizers.base import Candidate, Objective, Optimizer, OptimizerError, Outcome
from morphml.optimizers.random_search import RandomSearch
from morphml.optimizers.registry import OPTIMIZERS, make_optimizer

__all__ = [
    "OPTIMIZERS",
    "Candidate",
    "Objective",
    "Optimizer",
    "OptimizerError",
    "Outcome",
    "RandomSearch",
    "make_optimizer",
]
