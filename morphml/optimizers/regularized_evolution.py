"""Regularized (aging) evolution, Real et al. 2019, as an asynchronous steady-state algorithm.

The population is the `population_size` most recently told results; each proposal mutates the
best of `sample_size` members drawn at random, and the oldest member dies when a result arrives.
Until the population is full, proposals are random.
"""

from __future__ import annotations

from morphml.architecture import Architecture
from morphml.optimizers._params import check_int
from morphml.optimizers._search import Record, SearchBase
from morphml.optimizers.base import Objective
from morphml.space.base import Space


class RegularizedEvolution(SearchBase):
    def __init__(
        self,
        space: Space,
        objectives: list[Objective],
        seed: int | None = None,
        population_size: int = 20,
        sample_size: int = 5,
    ) -> None:
        check_int("population_size", population_size, 2)
        check_int("sample_size", sample_size, 1, population_size)
        super().__init__(space, objectives, seed)
        self.population_size = population_size
        self.sample_size = sample_size

    def population(self) -> list[Record]:
        # Aging: only the newest results live. Failed runs never join: they have no fitness.
        return self.completed()[-self.population_size :]

    def _propose(self) -> Architecture | None:
        population = self.population()
        if len(population) < self.population_size:
            return None
        sample = [population[self.rng.randrange(len(population))] for _ in range(self.sample_size)]
        parent = max(sample, key=lambda record: record["score"])
        return self.mutate_new(self.build(parent["config"]))
