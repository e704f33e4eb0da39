"""A genetic algorithm: tournament selection, uniform crossover, mutation and elitism.

Every offspring is proposed and evaluated (the result told back is its fitness). Generations
form asynchronously: once `population_size` offspring have results, the next population is the
`elitism` best of the old one plus the best offspring. The first population is random.
Population and offspring are all the state it needs, so the state does not grow with the run.
"""

from __future__ import annotations

from typing import Any

from morphml.architecture import Architecture
from morphml.mutation import crossover
from morphml.optimizers._params import check_int, check_rate
from morphml.optimizers._search import Record, SearchBase
from morphml.optimizers.base import Objective
from morphml.space.base import Space


class Genetic(SearchBase):
    persist_seen = False
    persist_history = False

    def __init__(
        self,
        space: Space,
        objectives: list[Objective],
        seed: int | None = None,
        population_size: int = 20,
        tournament_size: int = 3,
        crossover_rate: float = 0.8,
        mutation_rate: float = 0.5,
        elitism: int = 2,
    ) -> None:
        check_int("population_size", population_size, 2, 10**6)
        check_int("tournament_size", tournament_size, 1, population_size)
        check_int("elitism", elitism, 0, population_size - 1)
        check_rate("crossover_rate", crossover_rate)
        check_rate("mutation_rate", mutation_rate)
        super().__init__(space, objectives, seed)
        self.population_size, self.tournament_size = population_size, tournament_size
        self.crossover_rate, self.mutation_rate, self.elitism = (
            crossover_rate,
            mutation_rate,
            elitism,
        )
        self.population: list[Record] = []
        self.offspring: list[Record] = []

    def _propose(self) -> Architecture | None:
        if len(self.population) < self.population_size:
            return None
        first = self.build(self._tournament()["config"])
        child = first
        if self.rng.random() < self.crossover_rate:
            child = crossover(self.space, first, self.build(self._tournament()["config"]), self.rng)
        if not self.is_new(child.hash) or self.rng.random() < self.mutation_rate:
            return self.mutate_new(child)
        return child

    def _tournament(self) -> Record:
        entrants = self.rng.sample(self.population, self.tournament_size)
        return max(entrants, key=lambda record: record["score"])

    def _observe(self, record: Record) -> None:
        if record["score"] is None:
            return
        if len(self.population) < self.population_size:
            self.population.append(record)
            return
        self.offspring.append(record)
        if len(self.offspring) >= self.population_size:
            elite = _best(self.population, self.elitism)
            self.population = elite + _best(self.offspring, self.population_size - self.elitism)
            self.offspring = []

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "population": self.population, "offspring": self.offspring}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.population, self.offspring = list(state["population"]), list(state["offspring"])
        self.seen.update(record["hash"] for record in self.population + self.offspring)


def _best(records: list[Record], count: int) -> list[Record]:
    return sorted(records, key=lambda record: -record["score"])[:count]
