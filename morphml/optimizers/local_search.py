"""Hill climbing over the mutation neighbourhood (first improvement, random restarts).

The search proposes the untried neighbours of the current architecture in random order and moves
to the first one that scores better; when every neighbour of the current one is tried, it restarts
from a random architecture. White et al. 2020 found this simple method strong on NAS-Bench-201.
The incumbent and its queue are all the state it needs, so the state does not grow with the run.
"""

from __future__ import annotations

from typing import Any

from morphml.architecture import Architecture
from morphml.mutation import neighbours
from morphml.optimizers._search import Record, SearchBase
from morphml.optimizers.base import Objective
from morphml.space.base import Space


class LocalSearch(SearchBase):
    persist_seen = False
    persist_history = False

    def __init__(self, space: Space, objectives: list[Objective], seed: int | None = None) -> None:
        super().__init__(space, objectives, seed)
        self.current: Record | None = None
        self.queue: list[dict[str, Any]] = []  # configs of untried neighbours, popped from the end

    def _propose(self) -> Architecture | None:
        while self.current is not None and self.queue:
            architecture = self.build(self.queue.pop())
            if self.is_new(architecture.hash):
                return architecture
        if self.current is not None:
            self.current = None  # local optimum: every neighbour tried, restart at random
        return None

    def _observe(self, record: Record) -> None:
        score = record["score"]
        if score is None or (self.current is not None and score <= self.current["score"]):
            return
        self.current = record
        around = neighbours(self.space, self.build(record["config"]), self.rng)
        self.rng.shuffle(around)
        fresh = self.unseen([a.hash for a in around])  # one question to `known`, not one each
        self.queue = [a.config for a in around if a.hash in fresh]

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "current": self.current, "queue": self.queue}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.current, self.queue = state["current"], list(state["queue"])
        if self.current is not None:
            self.seen.add(self.current["hash"])
