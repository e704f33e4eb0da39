"""When to refill an experiment and by how much: a pure function of its counts and budget.

The store asks it in two places: after an outcome (is a refill due?) and inside the refill
itself (how many tasks to ask for; may the experiment complete?), so both answer alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class Budget:
    """What an experiment allows: how many tasks in flight, how many in all, for how long."""

    parallelism: int
    max_evaluations: int | None
    tasks_created: int
    max_seconds: float | None
    started_at: datetime | None

    def evaluations_left(self) -> int | None:
        """None: no limit."""
        if self.max_evaluations is None:
            return None
        return max(self.max_evaluations - self.tasks_created, 0)

    def out_of_time(self, now: datetime) -> bool:
        if self.max_seconds is None or self.started_at is None:
            return False
        return (now - self.started_at).total_seconds() >= self.max_seconds


@dataclass(frozen=True)
class RefillPlan:
    """`room`: tasks to ask for now. `cancel_pending`: the time budget ran out. `may_complete`:
    the experiment completes once nothing is in flight (`in_flight` counts what stays in flight
    after the plan's cancellations)."""

    room: int
    cancel_pending: bool
    may_complete: bool
    in_flight: int

    @property
    def due(self) -> bool:
        """Whether the refill has anything to do (else it is not worth loading the optimizer)."""
        idle_and_done = self.may_complete and self.in_flight == 0
        return self.room > 0 or self.cancel_pending or idle_and_done


def plan_refill(budget: Budget, *, pending: int, running: int, now: datetime) -> RefillPlan:
    """Top up to `parallelism` once in-flight tasks fall to the low-water mark; stop asking at
    the evaluation budget; at the time budget cancel what is pending and finish what runs."""
    if budget.out_of_time(now):
        return RefillPlan(room=0, cancel_pending=pending > 0, may_complete=True, in_flight=running)
    in_flight = pending + running
    room = room_for(budget.parallelism, budget.evaluations_left(), in_flight)
    return RefillPlan(room=room, cancel_pending=False, may_complete=room == 0, in_flight=in_flight)


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
