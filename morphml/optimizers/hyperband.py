"""Multi-fidelity search: ASHA (asynchronous successive halving) and asynchronous Hyperband.

Budgets form rungs min_budget, min_budget*eta, ... up to max_budget. Whenever asked, the search
promotes a candidate that is in the top 1/eta of its rung (trying the highest rung first) to the
next budget; if none qualifies, it starts a new random architecture at the bottom rung. Nobody
waits for a rung to fill, so workers never idle (Li et al. 2020). Hyperband runs several such
brackets, each starting at a higher rung, and hands new architectures to them in turn.
`sampler` says how a new architecture is proposed: "random" (Li et al.), or "surrogate": by the
GP's expected improvement on the highest rung with `min_points` results, as BOHB does with its
density model (Falkner et al. 2018; `BOHB` is Hyperband with that sampler, see _rung_model.py).
A promoted architecture is the same architecture at a larger `Candidate.budget`; its meta says
which budget it was promoted from (`promoted_from`), so a server can start it from the weights
that lower rung trained.
"""

from __future__ import annotations

import math
from typing import Any

from morphml.optimizers._params import check_int
from morphml.optimizers._rung_model import RungModel
from morphml.optimizers._search import SearchBase
from morphml.optimizers._state import draw_new
from morphml.optimizers.base import Candidate, Objective, OptimizerError, Outcome
from morphml.space.base import Space

SAMPLERS = ("random", "surrogate")


class ASHA(SearchBase):
    persist_history = False  # the rungs are its history; `seen` also holds what is in flight

    def __init__(
        self,
        space: Space,
        objectives: list[Objective],
        seed: int | None = None,
        min_budget: float = 1,
        max_budget: float = 27,
        eta: int = 3,
        brackets: int = 1,
        sampler: str = "random",
        min_points: int = 10,
    ) -> None:
        budgets = _budgets(min_budget, max_budget, eta)
        if not isinstance(brackets, int) or not 1 <= brackets <= len(budgets):
            raise ValueError(f"brackets must be an int in [1, {len(budgets)}], got {brackets!r}")
        if sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {list(SAMPLERS)}, got {sampler!r}")
        check_int("min_points", min_points, 2)
        super().__init__(space, objectives, seed)
        # None keeps the random sampler's state exactly as it was before samplers existed.
        self.model = RungModel(space, min_points) if sampler == "surrogate" else None
        self.budgets, self.eta, self.brackets = budgets, eta, brackets
        self.rungs: list[dict[str, Any]] = [{} for _ in budgets]  # hash -> {"config", "score"}
        self.promoted: list[list[str]] = [[] for _ in budgets]  # hashes sent on from each rung
        self.started = 0  # new architectures so far, which picks their bracket

    def ask(self, n: int = 1) -> list[Candidate]:
        if not isinstance(n, int) or n < 0:
            raise OptimizerError(f"ask: n must be an int >= 0, got {n!r}")
        candidates = []
        for _ in range(n):
            candidate = self._promotion() or self._new()
            if candidate is None:
                break
            candidates.append(candidate)
        return candidates

    def tell(
        self,
        candidate: Candidate,
        metrics: dict[str, float] | None,
        outcome: Outcome = Outcome.COMPLETED,
    ) -> None:
        rung = self._rung_of(candidate)
        entry = {"config": candidate.architecture.config, "score": self.score(metrics, outcome)}
        self.rungs[rung][candidate.architecture.hash] = entry
        self.seen.add(candidate.architecture.hash)

    def _promotion(self) -> Candidate | None:
        for rung in range(len(self.budgets) - 2, -1, -1):
            scored = [
                (e["score"], h) for h, e in self.rungs[rung].items() if e["score"] is not None
            ]
            top = sorted(scored, reverse=True)[: len(scored) // self.eta]
            for _, arch_hash in top:
                if arch_hash not in self.promoted[rung]:
                    self.promoted[rung].append(arch_hash)
                    architecture = self.build(self.rungs[rung][arch_hash]["config"])
                    promoted = self._candidate(architecture, rung + 1)
                    promoted.meta["promoted_from"] = self.budgets[rung]
                    return promoted
        return None

    def _new(self) -> Candidate | None:
        architecture = None
        if self.model is not None:
            architecture = self.model.propose(self.rungs, self.rng, self.is_new)
        architecture = architecture or draw_new(self.space, self.rng, self.is_new)
        if architecture is None:
            return None
        self.seen.add(architecture.hash)
        bracket = self.started % self.brackets
        self.started += 1
        return self._candidate(architecture, bracket)

    def _candidate(self, architecture: Any, rung: int) -> Candidate:
        return Candidate(architecture, budget=self.budgets[rung], meta={"rung": rung})

    def _rung_of(self, candidate: Candidate) -> int:
        rung = candidate.meta.get("rung")
        if isinstance(rung, int) and 0 <= rung < len(self.budgets):
            return rung
        return min(
            range(len(self.budgets)), key=lambda k: abs(self.budgets[k] - (candidate.budget or 0))
        )

    def state_dict(self) -> dict[str, Any]:
        state = {
            **super().state_dict(),
            "rungs": self.rungs,
            "promoted": self.promoted,
            "started": self.started,
        }
        if self.model is not None:
            state["model"] = self.model.state()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.rungs = [dict(rung) for rung in state["rungs"]]
        self.promoted = [list(hashes) for hashes in state["promoted"]]
        self.started = int(state["started"])
        if self.model is not None and "model" in state:
            self.model.load(state["model"])


class Hyperband(ASHA):
    """Asynchronous Hyperband: ASHA with one bracket per rung (the default)."""

    def __init__(
        self,
        space: Space,
        objectives: list[Objective],
        seed: int | None = None,
        min_budget: float = 1,
        max_budget: float = 27,
        eta: int = 3,
        brackets: int | None = None,
        sampler: str = "random",
        min_points: int = 10,
    ) -> None:
        count = len(_budgets(min_budget, max_budget, eta)) if brackets is None else brackets
        super().__init__(
            space, objectives, seed, min_budget, max_budget, eta, count, sampler, min_points
        )


class BOHB(Hyperband):
    """Hyperband whose new architectures come from the GP surrogate (sampler "surrogate")."""

    def __init__(
        self,
        space: Space,
        objectives: list[Objective],
        seed: int | None = None,
        min_budget: float = 1,
        max_budget: float = 27,
        eta: int = 3,
        brackets: int | None = None,
        min_points: int = 10,
    ) -> None:
        super().__init__(
            space, objectives, seed, min_budget, max_budget, eta, brackets, "surrogate", min_points
        )


def _budgets(min_budget: float, max_budget: float, eta: int) -> list[float]:
    if not isinstance(eta, int) or isinstance(eta, bool) or eta < 2:
        raise ValueError(f"eta must be an int >= 2, got {eta!r}")
    if not isinstance(min_budget, int | float) or not isinstance(max_budget, int | float):
        raise ValueError("min_budget and max_budget must be numbers")
    if not 0 < min_budget <= max_budget:
        raise ValueError(f"need 0 < min_budget <= max_budget, got {min_budget} and {max_budget}")
    steps = math.floor(math.log(max_budget / min_budget, eta) + 1e-9)
    return [float(min_budget * eta**k) for k in range(steps)] + [float(max_budget)]
