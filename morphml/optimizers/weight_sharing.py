"""Weight-sharing NAS (DARTS, SPOS) as an experiment: one supernet task, then the cells it derived
trained from scratch.

The first candidate is the supernet task: its architecture is a placeholder sample of the space
(the evaluator does not train it), its budget 0.0 (so its key never collides with a final
task's), and its meta tells the `train` evaluator to train a supernet over the space instead
(`{"phase": "supernet", "space": ..., "search": {...}}`, morphml.evaluators.supernet). Its result
carries the derived cells (morphml.optimizers.derived); each becomes one final candidate, best
first, trained from scratch for `final_budget` (None: the evaluator's epochs). Then `ask` returns
nothing and the server completes the experiment once nothing is in flight.

A supernet task that fails or is pruned is replaced by a new one (another placeholder) up to
`retries` times; after that the optimizer is done. The state is a few counters and the derived
configs, plain JSON.
"""

from __future__ import annotations

import json
import math
import random
from typing import Any, ClassVar

from morphml.architecture import Architecture
from morphml.optimizers._params import check_int
from morphml.optimizers._search import check_ask
from morphml.optimizers._state import draw_new
from morphml.optimizers.base import Candidate, KnownHashes, Objective, OptimizerError, Outcome
from morphml.optimizers.derived import MAX_METRICS, DerivedConfig, derived_configs, max_top_k
from morphml.space.base import Space
from morphml.space.cell import CellSpace
from morphml.weight_sharing.settings import SearchSettings

METHODS = ("darts", "spos")
SUPERNET, FINAL, DONE = "supernet", "final", "done"
SUPERNET_BUDGET = 0.0
MAX_RETRIES = 10
# Settings the optimizer's own params decide: `search` may not say them a second time.
OWN_SETTINGS = ("method", "top_k")


class WeightSharing:
    """One supernet task, then one final task per derived cell (at most `top_k`)."""

    one_shot: ClassVar[bool] = True
    """It proposes a fixed handful of candidates, not a stream (the optimizer contract tests
    that assume endless proposals skip it)."""

    def __init__(
        self,
        space: Space,
        objectives: list[Objective],
        seed: int | None = None,
        method: str = "darts",
        top_k: int = 1,
        final_budget: float | None = None,
        search: dict[str, Any] | None = None,
        retries: int = 1,
    ) -> None:
        if not isinstance(space, CellSpace):
            raise OptimizerError(
                "search_space: weight_sharing searches a cell space "
                f'({{"type": "cell", ...}}), not a {type(space).__name__}'
            )
        if space.node_aggregation != "sum":  # as morphml.weight_sharing.cells refuses it
            raise OptimizerError(
                "search_space.node_aggregation: weight_sharing's supernet sums each node's "
                f"edges; 'sum' only, not {space.node_aggregation!r}"
            )
        if method not in METHODS:
            raise ValueError(f"method must be one of {list(METHODS)}, got {method!r}")
        self.space, self.objectives = space, objectives
        self.method = method
        self.top_k = _check_top_k(space, top_k)
        self.final_budget = _check_budget(final_budget)
        self.search = _check_search(search)
        _check_settings({**self.search, "method": method, "top_k": self.top_k})
        self.retries = check_int("retries", retries, 0, MAX_RETRIES)
        # The placeholders' draws start from (seed, attempt), so the state keeps one int rather
        # than a generator's 625 words. No seed: one drawn now, kept in the state.
        self.seed = seed if seed is not None else random.SystemRandom().randrange(2**32)
        self.known: KnownHashes | None = None
        self.phase = SUPERNET
        self.supernets = 0  # supernet candidates asked
        self.in_flight = False  # the last one asked is not told yet
        self.placeholders: list[str] = []  # their hashes: a retry takes another architecture
        self.derived: list[DerivedConfig] = []  # best first
        self.finals_asked = 0  # of `derived`, in order
        self.told = 0

    def ask(self, n: int = 1) -> list[Candidate]:
        check_ask(n)
        if n == 0:
            return []
        if self.phase == SUPERNET:
            return self._ask_supernet()
        if self.phase == FINAL:
            return self._ask_finals(n)
        return []

    def _ask_supernet(self) -> list[Candidate]:
        if self.in_flight:
            return []  # nothing to propose until the supernet's result is told
        rng = random.Random(f"{self.seed}:{self.supernets}")
        placeholder = draw_new(self.space, rng, lambda h: h not in self.placeholders)
        if placeholder is None:  # a space too small for another placeholder
            self.phase = DONE
            return []
        self.supernets += 1
        self.in_flight = True
        self.placeholders.append(placeholder.hash)
        meta = {"phase": SUPERNET, "space": self.space.to_dict(), "search": self.settings()}
        return [Candidate(placeholder, SUPERNET_BUDGET, meta)]

    def _ask_finals(self, n: int) -> list[Candidate]:
        asked: list[Candidate] = []
        while len(asked) < n and self.finals_asked < len(self.derived):
            cell = self.derived[self.finals_asked]
            self.finals_asked += 1
            architecture = self.build(cell.config)
            if self.known is not None and self.known([architecture.hash]):
                continue  # the experiment holds it already
            meta = {"phase": FINAL, "rank": self.finals_asked, "supernet_score": cell.score}
            asked.append(Candidate(architecture, self.final_budget, meta))
        if self.finals_asked == len(self.derived):
            self.phase = DONE
        return asked

    def settings(self) -> dict[str, Any]:
        """The supernet task's `morphml.weight_sharing.SearchSettings`, as JSON."""
        return {**self.search, "method": self.method, "top_k": self.top_k}

    def build(self, config: dict[str, Any]) -> Architecture:
        return self.space.build(config, random.Random(0))  # complete configs: nothing to draw

    def tell(
        self,
        candidate: Candidate,
        metrics: dict[str, float] | None,
        outcome: Outcome = Outcome.COMPLETED,
    ) -> None:
        self.told += 1
        if candidate.meta.get("phase") != SUPERNET or self.phase != SUPERNET:
            return  # a final task: the experiment only ranks it
        self.in_flight = False
        if outcome == Outcome.COMPLETED and metrics is not None:
            self._found(metrics)
        elif self.supernets > self.retries:
            self.phase = DONE  # every attempt allowed failed: nothing to train from scratch

    def _found(self, metrics: dict[str, float]) -> None:
        try:
            decoded = derived_configs(self.space, metrics)
        except ValueError as exc:
            raise OptimizerError(f"the supernet task's result: {exc}") from None
        if not decoded:
            raise OptimizerError(
                "the supernet task's result holds no derived architecture (no 'derived.1.score'"
                " metric): weight_sharing needs the `train` evaluator"
            )
        distinct: dict[str, DerivedConfig] = {}
        for cell in decoded:
            distinct.setdefault(self.build(cell.config).hash, cell)
        self.derived = list(distinct.values())[: self.top_k]
        self.phase = FINAL

    def state_dict(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "phase": self.phase,
            "supernets": self.supernets,
            "in_flight": self.in_flight,
            "placeholders": list(self.placeholders),
            "derived": [{"config": c.config, "score": c.score} for c in self.derived],
            "finals_asked": self.finals_asked,
            "told": self.told,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.seed = int(state["seed"])
        self.phase = str(state["phase"])
        self.supernets = int(state["supernets"])
        self.in_flight = bool(state["in_flight"])
        self.placeholders = [str(h) for h in state["placeholders"]]
        self.derived = [
            DerivedConfig(dict(d["config"]), float(d["score"])) for d in state["derived"]
        ]
        self.finals_asked = int(state["finals_asked"])
        self.told = int(state["told"])


def _check_top_k(space: CellSpace, top_k: Any) -> int:
    """The supernet task's result carries `top_k` cells in one report of at most 64 metrics."""
    limit, edges = max_top_k(space), len(space.variables())
    if limit == 0:
        raise ValueError(
            f"top_k: a derived cell of {edges} edges does not fit in one result's "
            f"{MAX_METRICS} metrics; use fewer num_nodes"
        )
    if isinstance(top_k, bool) or not isinstance(top_k, int) or not 1 <= top_k <= limit:
        raise ValueError(
            f"top_k must be an int in [1, {limit}], got {top_k!r} (the supernet task's result "
            f"carries {edges + 1} metrics per derived cell in at most {MAX_METRICS})"
        )
    return top_k


def _check_budget(budget: Any) -> float | None:
    if budget is None:
        return None
    if isinstance(budget, bool) or not isinstance(budget, int | float):
        raise ValueError(f"final_budget must be a number > 0 or null, got {budget!r}")
    if not math.isfinite(budget) or budget <= 0:
        raise ValueError(f"final_budget must be a number > 0 or null, got {budget!r}")
    return float(budget)


def _check_search(search: Any) -> dict[str, Any]:
    """`search` as given, checked for its form (its values: `_check_settings`)."""
    if search is None:
        return {}
    if not isinstance(search, dict) or not all(isinstance(key, str) for key in search):
        raise ValueError(f"search must be an object of settings, got {search!r}")
    for key in OWN_SETTINGS:
        if key in search:
            raise ValueError(f"search.{key}: give it as optimizer.params.{key}")
    try:
        json.dumps(search, allow_nan=False)
    except (TypeError, ValueError):
        raise ValueError("search must be plain JSON (numbers, strings, booleans, null)") from None
    return dict(search)


def _check_settings(settings: dict[str, Any]) -> None:
    """The settings as the worker will parse them, checked at submit (torch-free), so that a
    bad value is a 422 naming it rather than a supernet task that fails on a worker."""
    try:
        SearchSettings.from_dict(settings)
    except ValueError as exc:
        raise ValueError(f"search.{exc}") from None
