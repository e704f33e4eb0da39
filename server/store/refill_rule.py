"""When to refill an experiment and by how much: a pure function of its counts and budget.

The store asks it in two places: after an outcome (is a refill due?) and inside the refill
itself (how many tasks to ask for; may the experiment complete?), so both answer alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

# Without `max_failed`, an experiment whose first this-many finished tasks all failed gives up:
# something is wrong with its spec or its workers, not with the candidates.
FAIL_FAST_FIRST = 5


@dataclass(frozen=True)
class Budget:
    """What an experiment allows: how many tasks in flight, how many in all, for how long,
    how many failures."""

    parallelism: int
    max_evaluations: int | None
    tasks_created: int
    max_seconds: float | None
    started_at: datetime | None
    max_failed: int | None = None

    def evaluations_left(self) -> int | None:
        """None: no limit."""
        if self.max_evaluations is None:
            return None
        return max(self.max_evaluations - self.tasks_created, 0)

    def failures_that_matter(self) -> int:
        """How many failures the give-up rule may need to count (no more are read)."""
        return self.max_failed if self.max_failed is not None else FAIL_FAST_FIRST

    def out_of_time(self, now: datetime) -> bool:
        if self.max_seconds is None or self.started_at is None:
            return False
        return (now - self.started_at).total_seconds() >= self.max_seconds


@dataclass(frozen=True)
class Outcomes:
    """How the experiment's tasks stand: in flight, and finished by how."""

    pending: int = 0
    running: int = 0
    failed: int = 0
    succeeded: int = 0  # completed or pruned: the evaluation ran


@dataclass(frozen=True)
class RefillPlan:
    """`room`: tasks to ask for now. `cancel_pending`: the time budget ran out. `may_complete`:
    the experiment completes once nothing is in flight (`in_flight` counts what stays in flight
    after the plan's cancellations), and fails instead if it has failures and no success.
    `give_up`: why the experiment fails now (too many failures)."""

    room: int
    cancel_pending: bool
    may_complete: bool
    in_flight: int
    give_up: str | None = None
    no_success: bool = False

    @property
    def due(self) -> bool:
        """Whether the refill has anything to do (else it is not worth loading the optimizer)."""
        idle_and_done = self.may_complete and self.in_flight == 0
        return self.room > 0 or self.cancel_pending or idle_and_done or self.give_up is not None


def plan_refill(budget: Budget, outcomes: Outcomes, *, now: datetime) -> RefillPlan:
    """Top up to `parallelism` once in-flight tasks fall to the low-water mark; stop asking at
    the evaluation budget; at the time budget cancel what is pending and finish what runs; give
    up on too many failures."""
    no_success = outcomes.failed > 0 and outcomes.succeeded == 0
    give_up = _give_up(budget, outcomes)
    if budget.out_of_time(now):
        running = outcomes.running
        return RefillPlan(0, outcomes.pending > 0, True, running, give_up, no_success)
    in_flight = outcomes.pending + outcomes.running
    room = 0 if give_up else room_for(budget.parallelism, budget.evaluations_left(), in_flight)
    return RefillPlan(room, False, room == 0, in_flight, give_up, no_success)


def _give_up(budget: Budget, outcomes: Outcomes) -> str | None:
    if budget.max_failed is not None and outcomes.failed >= budget.max_failed:
        return f"{outcomes.failed} tasks failed (budget.max_failed is {budget.max_failed})"
    if budget.max_failed is None and outcomes.succeeded == 0:
        if outcomes.failed >= FAIL_FAST_FIRST:
            return f"its first {outcomes.failed} tasks all failed"
    return None


def room_for(parallelism: int, left: int | None, in_flight: int) -> int:
    """None above the low-water mark (`parallelism - max(1, parallelism // 4)`), so the
    optimizer is consulted once per batch of outcomes; else back up to `parallelism`."""
    low_water = parallelism - max(1, parallelism // 4)
    if in_flight > low_water:
        return 0
    room = parallelism - in_flight
    if left is not None:
        room = min(room, left)
    return max(room, 0)
