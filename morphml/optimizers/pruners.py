"""Pruners: decide from intermediate metrics whether a running candidate should stop early.

The control plane calls a pruner on every heartbeat that carries an intermediate value of the
first objective (e.g. validation accuracy after each epoch):

    pruner = make_pruner({"name": "median", "params": {"warmup_steps": 2}}, objectives)
    if pruner.should_stop(task_key, history, all_histories):
        ...answer the heartbeat with "stop", then tell the optimizer Outcome.PRUNED

`history` is the task's values so far, one per step (epoch), oldest first; `all_histories` maps
every task of the experiment (finished, pruned or running; the task itself may be included) to
its values. Pruners keep no state of their own: the histories, which the server already stores,
are all they need, so a restarted server decides exactly as before.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from morphml.optimizers._params import check_int
from morphml.optimizers.base import Objective, OptimizerError

Histories = Mapping[str, Sequence[float]]


class Pruner(Protocol):
    def should_stop(
        self, task_key: str, history: Sequence[float], all_histories: Histories
    ) -> bool: ...

    def horizon(self, steps: int) -> int | None:
        """How many leading values of the other tasks' histories `should_stop` reads for a task
        with `steps` values (None: it decides nothing yet), so a caller that stores histories
        need not load whole ones."""
        ...


class NoPruner:
    """Never stops anything."""

    def should_stop(
        self, task_key: str, history: Sequence[float], all_histories: Histories
    ) -> bool:
        return False

    def horizon(self, steps: int) -> int | None:
        return None


class MedianPruner:
    """Stop a task whose best value so far is worse than the median, at the same step, of the
    other tasks' best values so far (Optuna's and Vizier's median stopping rule)."""

    def __init__(
        self, direction: str = "maximize", warmup_steps: int = 1, min_tasks: int = 5
    ) -> None:
        self.sign = Objective("pruned", direction).sign()
        self.warmup_steps = check_int("warmup_steps", warmup_steps, 0)
        self.min_tasks = check_int("min_tasks", min_tasks, 1)

    def should_stop(
        self, task_key: str, history: Sequence[float], all_histories: Histories
    ) -> bool:
        step = len(history)
        if step <= self.warmup_steps:
            return False
        peers = [
            self._best(h[:step])
            for k, h in all_histories.items()
            if k != task_key and len(h) >= step
        ]
        if len(peers) < self.min_tasks:
            return False
        return self._best(history) < statistics.median(peers)

    def horizon(self, steps: int) -> int | None:
        return steps if steps > self.warmup_steps else None

    def _best(self, values: Sequence[float]) -> float:
        return max(self.sign * v for v in values)


class ASHAPruner:
    """Successive halving as a pruner: at the rung steps min_step, min_step*eta, ... a task goes
    on only while it is in the top 1/eta of the tasks that reached that step (ASHA's rule)."""

    def __init__(self, direction: str = "maximize", min_step: int = 1, eta: int = 3) -> None:
        self.sign = Objective("pruned", direction).sign()
        self.min_step = check_int("min_step", min_step, 1)
        self.eta = check_int("eta", eta, 2)

    def should_stop(
        self, task_key: str, history: Sequence[float], all_histories: Histories
    ) -> bool:
        rung = self._last_rung(len(history))
        if rung is None:
            return False
        peers = [
            self.sign * h[rung - 1]
            for k, h in all_histories.items()
            if k != task_key and len(h) >= rung
        ]
        if len(peers) < self.eta:
            return False  # too few to rank against: ASHA would promote rather than wait
        mine = self.sign * history[rung - 1]
        better = sum(peer > mine for peer in peers)
        return better >= (len(peers) + 1) // self.eta

    def horizon(self, steps: int) -> int | None:
        return self._last_rung(steps)

    def _last_rung(self, steps: int) -> int | None:
        rung, last = self.min_step, None
        while rung <= steps:
            last, rung = rung, rung * self.eta
        return last


PRUNERS: dict[str, type[NoPruner] | type[MedianPruner] | type[ASHAPruner]] = {
    "none": NoPruner,
    "median": MedianPruner,
    "asha": ASHAPruner,
}


def make_pruner(
    spec: Mapping[str, Any] | None, objectives: Sequence[Objective | Mapping[str, Any]] = ()
) -> Pruner:
    """The pruner of an experiment spec `{"name": ..., "params": {...}}`; it watches the first
    objective in its direction. None or name "none" never prunes. Bad specs raise OptimizerError."""
    if spec is None:
        return NoPruner()
    name, params = spec.get("name"), dict(spec.get("params") or {})
    factory = PRUNERS.get(name) if isinstance(name, str) else None
    if factory is None:
        raise OptimizerError(f"pruner.name: unknown pruner {name!r}; known: {sorted(PRUNERS)}")
    if factory is not NoPruner and objectives:
        first = objectives[0]
        params.setdefault(
            "direction",
            first.direction if isinstance(first, Objective) else first.get("direction", "maximize"),
        )
    try:
        return factory(**params)
    except (TypeError, ValueError) as exc:
        raise OptimizerError(f"pruner.params: {exc}") from None
