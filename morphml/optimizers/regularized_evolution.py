"""Regularized (aging) evolution, Real et al. 2019, as an asynchronous steady-state algorithm.

The population is the `population_size` most recently told results; each proposal mutates the
best of `sample_size` members drawn at random, and the oldest member dies when a result arrives.
Until the population is full, proposals are random. The population is the whole state the
algorithm needs, so the state stays the same size however long the run.
"""

from __future__ import annotations

from typing import Any

from morphml.architecture import Architecture
from morphml.optimizers._params import check_int
from morphml.optimizers._search import Record, SearchBase, completed
from morphml.optimizers.base import Objective
from morphml.space.base import Space


class RegularizedEvolution(SearchBase):
    persist_seen = False
    persist_history = False

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
        self.population: list[Record] = []  # oldest first

    def _propose(self) -> Architecture | None:
        population = self.population
        if len(population) < self.population_size:
            return None
        sample = [population[self.rng.randrange(len(population))] for _ in range(self.sample_size)]
        parent = max(sample, key=lambda record: record["score"])
        return self.mutate_new(self.build(parent["config"]))

    def _observe(self, record: Record) -> None:
        self._join([record])

    def _join(self, records: list[Record]) -> None:
        # Aging: only the newest results live. Failed runs never join: they have no fitness.
        self.population = [*self.population, *completed(records)][-self.population_size :]

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "population": self.population}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.population = []
        # A state saved before the population was persisted has the history it came from.
        self._join(list(state["population"]) if "population" in state else state["history"])
        self.seen.update(record["hash"] for record in self.population)
