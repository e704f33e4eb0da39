"""Random search: independent uniform samples of the space, never the same architecture twice."""

from __future__ import annotations

import random
from typing import Any

from morphml.optimizers._state import draw_new, load_rng, rng_state
from morphml.optimizers.base import Candidate, Objective, Outcome
from morphml.space.base import Space


class RandomSearch:
    """Samples uniformly; `ask` returns fewer than n candidates once the space is exhausted."""

    def __init__(self, space: Space, objectives: list[Objective], seed: int | None = None) -> None:
        self.space = space
        self.objectives = objectives
        self.rng = random.Random(seed)
        self.seen: set[str] = set()

    def ask(self, n: int = 1) -> list[Candidate]:
        candidates = []
        for _ in range(n):
            architecture = draw_new(self.space, self.rng, self.seen)
            if architecture is None:
                break
            self.seen.add(architecture.hash)
            candidates.append(Candidate(architecture))
        return candidates

    def tell(
        self,
        candidate: Candidate,
        metrics: dict[str, float] | None,
        outcome: Outcome = Outcome.COMPLETED,
    ) -> None:
        self.seen.add(candidate.architecture.hash)

    def state_dict(self) -> dict[str, Any]:
        return {"rng": rng_state(self.rng), "seen": sorted(self.seen)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        load_rng(self.rng, state["rng"])
        self.seen = set(state["seen"])
