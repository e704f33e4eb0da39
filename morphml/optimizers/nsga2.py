"""NSGA-II (Deb et al. 2002) for several objectives, as an asynchronous steady-state algorithm.

The population is the `population_size` best results by non-dominated rank, then crowding
distance; each told result joins it and the worst member leaves. Offspring come from binary
tournaments (rank, then crowding), uniform crossover and mutation. `front()` is the Pareto front
of everything told so far, kept as it goes: the state grows with the front, not with the run.
"""

from __future__ import annotations

from typing import Any

from morphml.architecture import Architecture
from morphml.mutation import crossover
from morphml.optimizers._params import check_int, check_rate
from morphml.optimizers._search import Record, SearchBase
from morphml.optimizers.base import Objective
from morphml.optimizers.pareto import crowding_distance, dominates, nondominated_sort
from morphml.space.base import Space


class NSGA2(SearchBase):
    persist_seen = False
    persist_history = False

    def __init__(
        self,
        space: Space,
        objectives: list[Objective],
        seed: int | None = None,
        population_size: int = 20,
        crossover_rate: float = 0.9,
    ) -> None:
        check_int("population_size", population_size, 2)
        check_rate("crossover_rate", crossover_rate)
        super().__init__(space, objectives, seed)
        self.population_size, self.crossover_rate = population_size, crossover_rate
        self.population: list[Record] = []
        self.fitness: list[tuple[int, float]] = []  # per member: (rank, crowding distance)
        self.pareto: list[Record] = []  # the front of every told result, in the order told

    def front(self) -> list[Record]:
        """Every told result that no other told result dominates."""
        return list(self.pareto)

    def _propose(self) -> Architecture | None:
        if len(self.population) < self.population_size:
            return None
        child = self.build(self._tournament()["config"])
        if self.rng.random() < self.crossover_rate:
            child = crossover(self.space, child, self.build(self._tournament()["config"]), self.rng)
        return self.mutate_new(child)

    def _tournament(self) -> Record:
        a, b = self.rng.sample(range(len(self.population)), 2)
        # Lower rank wins; on a tie, the lonelier (larger crowding distance).
        better = min((a, b), key=lambda i: (self.fitness[i][0], -self.fitness[i][1]))
        return self.population[better]

    def _observe(self, record: Record) -> None:
        values = self._values(record)
        if values is None:
            return
        self.population, self.fitness = _survivors(
            [*self.population, record], self.population_size, self._values
        )
        self._update_front(record, values)

    def _update_front(self, record: Record, values: tuple[float, ...]) -> None:
        # Dominance is transitive: what no member of the front dominates, no told result does.
        members = [(r, v) for r in self.pareto if (v := self._values(r)) is not None]
        if not any(dominates(v, values) for _, v in members):
            self.pareto = [r for r, v in members if not dominates(values, v)] + [record]

    def _values(self, record: Record) -> tuple[float, ...] | None:
        values = record.get("values") if len(self.objectives) > 1 else [record["score"]]
        return None if values is None or None in values else tuple(values)

    def state_dict(self) -> dict[str, Any]:
        return {
            **super().state_dict(),
            "population": self.population,
            "fitness": self.fitness,
            "front": self.pareto,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.population = list(state["population"])
        self.fitness = [(int(rank), float(crowd)) for rank, crowd in state["fitness"]]
        self.pareto = list(state.get("front", []))
        if "front" not in state:  # saved with the history, before the front was kept
            for record in state["history"]:
                if (values := self._values(record)) is not None:
                    self._update_front(record, values)
        self.seen.update(record["hash"] for record in self.population + self.pareto)


def _survivors(
    records: list[Record], size: int, values: Any
) -> tuple[list[Record], list[tuple[int, float]]]:
    """NSGA-II environmental selection: whole fronts while they fit, then the least crowded."""
    vectors = [values(r) for r in records]
    kept: list[tuple[int, int, float]] = []  # (index, rank, crowding)
    for rank, front in enumerate(nondominated_sort(vectors)):
        crowding = crowding_distance(vectors, front)
        ordered = sorted(front, key=lambda i: -crowding[i])
        kept += [(i, rank, crowding[i]) for i in ordered[: size - len(kept)]]
        if len(kept) >= size:
            break
    return [records[i] for i, _, _ in kept], [(rank, crowd) for _, rank, crowd in kept]
