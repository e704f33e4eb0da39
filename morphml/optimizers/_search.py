"""`SearchBase`: the machinery every single-fidelity optimizer shares.

It owns the RNG, the set of architectures already proposed (canonical hashes), the history of
told results and the ask loop, so that an algorithm only says which architecture it would like
next (`_propose`) and what it learns from a result (`_observe`). A proposal that repeats an
architecture is replaced by a fresh random one, and `ask` stops early once even random draws find
nothing new, so no optimizer hangs on a nearly exhausted space.
"""

from __future__ import annotations

import math
import random
from typing import Any

from morphml.architecture import Architecture
from morphml.mutation import mutate
from morphml.optimizers._state import draw_new, load_rng, rng_state
from morphml.optimizers.base import Candidate, Objective, OptimizerError, Outcome
from morphml.optimizers.pareto import as_vector
from morphml.space.base import Space
from morphml.space.domains import Value

# {"config": {...}, "hash": str, "score": float | None, "values": [every objective, maximised]}
Record = dict[str, Any]
MUTATION_TRIES = 20


class SearchBase:
    """Base of the single-fidelity optimizers; subclasses override `_propose`/`_observe`."""

    def __init__(self, space: Space, objectives: list[Objective], seed: int | None = None) -> None:
        self.space = space
        self.objectives = objectives
        self.rng = random.Random(seed)
        self.seen: set[str] = set()
        self.history: list[Record] = []
        self.pending: dict[str, dict[str, Value]] = {}  # asked, not yet told: hash -> config

    def ask(self, n: int = 1) -> list[Candidate]:
        if not isinstance(n, int) or n < 0:
            raise OptimizerError(f"ask: n must be an int >= 0, got {n!r}")
        candidates = []
        for _ in range(n):
            architecture = self._propose()
            if architecture is None or architecture.hash in self.seen:
                architecture = draw_new(self.space, self.rng, self.seen)
            if architecture is None:
                break
            self.seen.add(architecture.hash)
            self.pending[architecture.hash] = architecture.config
            candidates.append(Candidate(architecture))
        return candidates

    def tell(
        self,
        candidate: Candidate,
        metrics: dict[str, float] | None,
        outcome: Outcome = Outcome.COMPLETED,
    ) -> None:
        architecture = candidate.architecture
        self.seen.add(architecture.hash)
        self.pending.pop(architecture.hash, None)
        record: Record = {
            "config": architecture.config,
            "hash": architecture.hash,
            "score": self.score(metrics, outcome),
        }
        if len(self.objectives) > 1:
            vector = as_vector(metrics, self.objectives) if outcome == Outcome.COMPLETED else None
            record["values"] = None if vector is None else list(vector)
        self.history.append(record)
        self._observe(record)

    def score(self, metrics: dict[str, float] | None, outcome: Outcome) -> float | None:
        """The first objective as a maximisation; None for failed or pruned runs, whose metrics
        (missing, or an early epoch's) would mislead the search about the architecture."""
        if outcome != Outcome.COMPLETED or metrics is None:
            return None
        value = metrics.get(self.objectives[0].metric)
        if not isinstance(value, int | float) or math.isnan(value):
            return None
        return self.objectives[0].sign() * float(value)

    def state_dict(self) -> dict[str, Any]:
        return {
            "rng": rng_state(self.rng),
            "seen": sorted(self.seen),
            "history": self.history,
            "pending": self.pending,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        load_rng(self.rng, state["rng"])
        self.seen = set(state["seen"])
        self.history = [dict(record) for record in state["history"]]
        self.pending = dict(state["pending"])

    # --- what subclasses override ------------------------------------------------------------

    def _propose(self) -> Architecture | None:
        """The architecture the algorithm wants next; None or a seen one means: draw at random."""
        return None

    def _observe(self, record: Record) -> None:
        """Learn from one told result (already appended to `history`)."""

    # --- helpers -----------------------------------------------------------------------------

    def build(self, config: dict[str, Value]) -> Architecture:
        """Rebuild a told architecture from its config (configs are complete, so no sampling)."""
        return self.space.build(config, random.Random(0))

    def mutate_new(self, parent: Architecture) -> Architecture | None:
        """A mutation of `parent` not proposed before, or None when a few tries found none."""
        for _ in range(MUTATION_TRIES):
            child = mutate(self.space, parent, self.rng)
            if child.hash not in self.seen:
                return child
        return None

    def completed(self) -> list[Record]:
        return [record for record in self.history if record["score"] is not None]
