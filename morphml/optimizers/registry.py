"""`make_optimizer(name, space, ...)`: optimizers by name, so the REST API can name them in JSON."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

from morphml.optimizers.base import Objective, Optimizer, OptimizerError
from morphml.optimizers.differential_evolution import DifferentialEvolution
from morphml.optimizers.genetic import Genetic
from morphml.optimizers.hyperband import ASHA, BOHB, Hyperband
from morphml.optimizers.local_search import LocalSearch
from morphml.optimizers.nsga2 import NSGA2
from morphml.optimizers.random_search import RandomSearch
from morphml.optimizers.regularized_evolution import RegularizedEvolution
from morphml.optimizers.simulated_annealing import SimulatedAnnealing
from morphml.optimizers.surrogate import SurrogateSearch
from morphml.optimizers.tpe import TPE
from morphml.optimizers.weight_sharing import WeightSharing
from morphml.space.base import Space

OPTIMIZERS: dict[str, Callable[..., Optimizer]] = {
    "random": RandomSearch,
    "regularized_evolution": RegularizedEvolution,
    "genetic": Genetic,
    "local_search": LocalSearch,
    "simulated_annealing": SimulatedAnnealing,
    "surrogate": SurrogateSearch,
    "differential_evolution": DifferentialEvolution,
    "tpe": TPE,
    "nsga2": NSGA2,
    "asha": ASHA,
    "hyperband": Hyperband,
    "weight_sharing": WeightSharing,
    "bohb": BOHB,  # Hyperband with sampler="surrogate"
    # The default is the optimizer that bench/search_quality.py found best (see bench/README.md).
    "default": SurrogateSearch,
}

DEFAULT_OBJECTIVES = (Objective("val_accuracy", "maximize"),)


def make_optimizer(
    name: str,
    space: Space,
    objectives: Sequence[Objective | dict[str, Any]] = DEFAULT_OBJECTIVES,
    seed: int | None = None,
    **params: Any,
) -> Optimizer:
    """Build the optimizer `name` over `space`; unknown names or parameters raise OptimizerError."""
    factory = OPTIMIZERS.get(name)
    if factory is None:
        raise OptimizerError(
            f"optimizer.name: unknown optimizer {name!r}; known: {sorted(OPTIMIZERS)}"
        )
    parsed = [_objective(o) for o in objectives]
    if not parsed:
        raise OptimizerError("objectives: give at least one objective")
    accepted = set(inspect.signature(factory).parameters) - {"space", "objectives", "seed"}
    unknown = set(params) - accepted
    if unknown:
        raise OptimizerError(
            f"optimizer.params: {name} has no parameter {sorted(unknown)[0]!r}; "
            f"it takes {sorted(accepted)}"
        )
    try:
        return factory(space, parsed, seed=seed, **params)
    except (TypeError, ValueError) as exc:
        raise OptimizerError(f"optimizer.params: {exc}") from None


def _objective(raw: Objective | dict[str, Any]) -> Objective:
    if isinstance(raw, Objective):
        return raw
    if not isinstance(raw, dict) or not isinstance(raw.get("metric"), str):
        raise OptimizerError("objectives: each needs a 'metric' name and a 'direction'")
    return Objective(raw["metric"], raw.get("direction", "maximize"))
