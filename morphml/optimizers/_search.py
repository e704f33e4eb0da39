"""`SearchBase`: the machinery every single-fidelity optimizer shares.

It owns the RNG, the set of architectures already proposed (canonical hashes), the history of
told results and the ask loop, so that an algorithm only says which new architecture it would
like next (`_propose`) and what it learns from a result (`_observe`). Without a proposal, `ask`
draws a new architecture at random, and it stops early once even random draws find nothing new,
so no optimizer hangs on a nearly exhausted space.

The state need not grow with the run: an algorithm that never reads `history` turns off
`persist_history`, and one whose state says what it still needs turns off `persist_seen` and
leaves "was this proposed before?" to `known` (the server's task table) after a reload.
"""

from __future__ import annotations

import math
import random
from collections.abc import Collection
from typing import Any, ClassVar

from morphml.architecture import Architecture
from morphml.mutation import mutate
from morphml.optimizers._state import draw_new, load_rng, rng_state
from morphml.optimizers.base import Candidate, KnownHashes, Objective, OptimizerError, Outcome
from morphml.optimizers.pareto import as_vector
from morphml.space.base import Space
from morphml.space.domains import Value

# {"config": {...}, "hash": str, "score": float | None, "values": [every objective, maximised]}
Record = dict[str, Any]
MUTATION_TRIES = 20


class SearchBase:
    """Base of the single-fidelity optimizers; subclasses override `_propose`/`_observe`."""

    persist_seen: ClassVar[bool] = True
    """False: `state_dict` leaves out `seen`; after a reload only `known` remembers the rest."""
    persist_history: ClassVar[bool] = True
    """False: the algorithm never reads `history`, so it is neither kept nor persisted."""

    def __init__(self, space: Space, objectives: list[Objective], seed: int | None = None) -> None:
        self.space = space
        self.objectives = objectives
        self.rng = random.Random(seed)
        self.seen: set[str] = set()
        self.history: list[Record] = []
        self.pending: dict[str, dict[str, Value]] = {}  # asked, not yet told: hash -> config
        # How many results were told: a bounded witness that across restarts each outcome was
        # told exactly once, now that the history itself is not always kept.
        self.told = 0
        self.known: KnownHashes | None = None

    def ask(self, n: int = 1) -> list[Candidate]:
        check_ask(n)
        candidates = []
        for _ in range(n):
            architecture = self._propose() or draw_new(self.space, self.rng, self.is_new)
            if architecture is None:
                break
            candidates.append(self._asked(architecture))
        return candidates

    def _asked(self, architecture: Architecture) -> Candidate:
        self.seen.add(architecture.hash)
        self.pending[architecture.hash] = architecture.config
        return Candidate(architecture)

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
        if self.persist_history:
            self.history.append(record)
        self.told += 1
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
        state: dict[str, Any] = {
            "rng": rng_state(self.rng),
            "pending": self.pending,
            "told": self.told,
        }
        if self.persist_seen:
            state["seen"] = sorted(self.seen)
        if self.persist_history:
            state["history"] = self.history
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Also reads states saved with `seen` and `history` by optimizers that now leave them
        out (the server's older rows): a subclass rebuilds its own state from the history."""
        load_rng(self.rng, state["rng"])
        self.pending = dict(state["pending"])
        history = state.get("history", [])
        self.told = int(state.get("told", len(history)))
        self.history = [dict(record) for record in history] if self.persist_history else []
        self.seen = {*state.get("seen", ()), *self.pending, *(r["hash"] for r in self.history)}

    # --- what subclasses override ------------------------------------------------------------

    def _propose(self) -> Architecture | None:
        """The new architecture (`is_new`) the algorithm wants next; None: draw at random."""
        return None

    def _observe(self, record: Record) -> None:
        """Learn from one told result (already appended to `history` if it is kept)."""

    # --- helpers -----------------------------------------------------------------------------

    def unseen(self, hashes: Collection[str]) -> set[str]:
        """Those of `hashes` never proposed: neither in `seen` nor reported by `known`."""
        fresh = {arch_hash for arch_hash in hashes if arch_hash not in self.seen}
        if self.known is not None and fresh:
            held = self.known(fresh) & fresh
            self.seen |= held  # ask the caller about a hash at most once per load
            fresh -= held
        return fresh

    def is_new(self, arch_hash: str) -> bool:
        """`unseen` for one hash: what a proposal must be."""
        return bool(self.unseen([arch_hash]))

    def build(self, config: dict[str, Value]) -> Architecture:
        """Rebuild a told architecture from its config (configs are complete, so no sampling)."""
        return self.space.build(config, random.Random(0))

    def mutate_new(self, parent: Architecture) -> Architecture | None:
        """A mutation of `parent` not proposed before, or None when a few tries found none."""
        for _ in range(MUTATION_TRIES):
            child = mutate(self.space, parent, self.rng)
            if self.is_new(child.hash):
                return child
        return None

    def completed(self) -> list[Record]:
        return completed(self.history)


def check_ask(n: object) -> None:
    if not isinstance(n, int) or n < 0:
        raise OptimizerError(f"ask: n must be an int >= 0, got {n!r}")


def completed(records: list[Record]) -> list[Record]:
    """The records with a score: failed and pruned runs say nothing about the architecture."""
    return [record for record in records if record["score"] is not None]
