"""Ask/tell optimizers with JSON state; `make_optimizer` builds one by name."""

from morphml.optimizers.base import (
    AcceptsKnown,
    Candidate,
    KnownHashes,
    Objective,
    Optimizer,
    OptimizerError,
    Outcome,
)
from morphml.optimizers.differential_evolution import DifferentialEvolution
from morphml.optimizers.genetic import Genetic
from morphml.optimizers.hyperband import ASHA, Hyperband
from morphml.optimizers.local_search import LocalSearch
from morphml.optimizers.nsga2 import NSGA2
from morphml.optimizers.pareto import pareto_front
from morphml.optimizers.pruners import ASHAPruner, MedianPruner, Pruner, make_pruner
from morphml.optimizers.random_search import RandomSearch
from morphml.optimizers.registry import OPTIMIZERS, make_optimizer
from morphml.optimizers.regularized_evolution import RegularizedEvolution
from morphml.optimizers.simulated_annealing import SimulatedAnnealing
from morphml.optimizers.surrogate import SurrogateSearch
from morphml.optimizers.tpe import TPE
from morphml.optimizers.weight_sharing import WeightSharing

__all__ = [
    "ASHA",
    "NSGA2",
    "OPTIMIZERS",
    "TPE",
    "ASHAPruner",
    "AcceptsKnown",
    "Candidate",
    "DifferentialEvolution",
    "Genetic",
    "Hyperband",
    "KnownHashes",
    "LocalSearch",
    "MedianPruner",
    "Objective",
    "Optimizer",
    "OptimizerError",
    "Outcome",
    "Pruner",
    "RandomSearch",
    "RegularizedEvolution",
    "SimulatedAnnealing",
    "SurrogateSearch",
    "WeightSharing",
    "make_optimizer",
    "make_pruner",
    "pareto_front",
]
