"""Simulated annealing over the mutation neighbourhood.

Each proposal is an untried neighbour (one mutation) of the current architecture. A result
becomes the current one if it is better, or with probability exp(delta / T) if it is worse,
where delta is measured in standard deviations of the scores seen so far (so the temperature
means the same whatever the metric's units) and T decays geometrically with every result.
Those scores are kept as running moments, so the state does not grow with the run.
"""

from __future__ import annotations

import math
from typing import Any

from morphml.architecture import Architecture
from morphml.optimizers._search import Record, SearchBase, completed
from morphml.optimizers.base import Objective
from morphml.space.base import Space


class SimulatedAnnealing(SearchBase):
    persist_seen = False
    persist_history = False

    def __init__(
        self,
        space: Space,
        objectives: list[Objective],
        seed: int | None = None,
        initial_temperature: float = 1.0,
        cooling: float = 0.95,
        min_temperature: float = 0.01,
    ) -> None:
        if not isinstance(initial_temperature, int | float) or initial_temperature <= 0:
            raise ValueError(f"initial_temperature must be > 0, got {initial_temperature!r}")
        if not isinstance(cooling, int | float) or not 0 < cooling <= 1:
            raise ValueError(f"cooling must be in (0, 1], got {cooling!r}")
        if not isinstance(min_temperature, int | float) or min_temperature <= 0:
            raise ValueError(f"min_temperature must be > 0, got {min_temperature!r}")
        super().__init__(space, objectives, seed)
        self.temperature = float(initial_temperature)
        self.cooling, self.min_temperature = float(cooling), float(min_temperature)
        self.current: Record | None = None
        self.moments = [0, 0.0, 0.0]  # of the scores so far: count, mean, sum of squared deviations

    def _propose(self) -> Architecture | None:
        if self.current is None:
            return None
        return self.mutate_new(self.build(self.current["config"]))

    def _observe(self, record: Record) -> None:
        score = record["score"]
        if score is None:
            return
        self._add_score(score)
        if self.current is None or self._accept(score - self.current["score"]):
            self.current = record
        self.temperature = max(self.min_temperature, self.temperature * self.cooling)

    def _add_score(self, score: float) -> None:
        # Welford's update: the standard deviation of every score without keeping them.
        count, mean, squares = self.moments
        count += 1
        delta = score - mean
        mean += delta / count
        self.moments = [count, mean, squares + delta * (score - mean)]

    def _accept(self, delta: float) -> bool:
        if delta >= 0:
            return True
        count, _, squares = self.moments
        scale = math.sqrt(squares / count) if count > 1 else 1.0
        return self.rng.random() < math.exp(delta / ((scale or 1.0) * self.temperature))

    def state_dict(self) -> dict[str, Any]:
        return {
            **super().state_dict(),
            "current": self.current,
            "temperature": self.temperature,
            "moments": self.moments,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.current, self.temperature = state["current"], float(state["temperature"])
        if "moments" in state:
            count, mean, squares = state["moments"]
            self.moments = [int(count), float(mean), float(squares)]
        else:  # saved with the history, before the moments were kept
            self.moments = [0, 0.0, 0.0]
            for record in completed(state["history"]):
                self._add_score(record["score"])
        if self.current is not None:
            self.seen.add(self.current["hash"])
