"""The refill rule alone: when a refill is due, how many tasks it asks for, when it completes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from server.store.refill_rule import Budget, plan_refill, room_for

NOW = datetime(2026, 12, 1, tzinfo=UTC)


def budget(parallelism: int = 8, max_evaluations: int | None = None, created: int = 0, **kw):
    return Budget(
        parallelism=parallelism,
        max_evaluations=max_evaluations,
        tasks_created=created,
        max_seconds=kw.get("max_seconds"),
        started_at=kw.get("started_at"),
    )


@pytest.mark.parametrize(
    ("parallelism", "in_flight", "room"),
    [(8, 8, 0), (8, 7, 0), (8, 6, 2), (8, 0, 8), (1, 1, 0), (1, 0, 1), (4, 3, 1), (100, 76, 0)],
)
def test_room_waits_for_the_low_water_mark_then_tops_up(
    parallelism: int, in_flight: int, room: int
) -> None:
    assert room_for(parallelism, None, in_flight) == room


def test_room_never_exceeds_the_evaluations_left() -> None:
    assert room_for(8, 3, 0) == 3
    assert room_for(8, 0, 0) == 0


def test_above_the_low_water_mark_nothing_is_due() -> None:
    plan = plan_refill(budget(), pending=4, running=3, now=NOW)
    assert plan.room == 0 and not plan.due


def test_at_the_low_water_mark_the_refill_tops_up_to_parallelism() -> None:
    plan = plan_refill(budget(), pending=2, running=4, now=NOW)
    assert plan.room == 2 and plan.due and not plan.cancel_pending


def test_budget_spent_and_nothing_in_flight_completes() -> None:
    plan = plan_refill(budget(max_evaluations=20, created=20), pending=0, running=0, now=NOW)
    assert plan.room == 0 and plan.may_complete and plan.due


def test_budget_spent_with_tasks_running_waits_for_them() -> None:
    plan = plan_refill(budget(max_evaluations=20, created=20), pending=0, running=2, now=NOW)
    assert not plan.due


def test_time_budget_cancels_pending_and_finishes_what_runs() -> None:
    late = budget(max_seconds=60, started_at=NOW - timedelta(seconds=61))
    plan = plan_refill(late, pending=5, running=2, now=NOW)
    assert plan.cancel_pending and plan.room == 0 and plan.in_flight == 2 and plan.due
    idle = plan_refill(late, pending=0, running=0, now=NOW)
    assert idle.due and idle.may_complete and not idle.cancel_pending


def test_time_left_is_not_out_of_time() -> None:
    early = budget(max_seconds=60, started_at=NOW - timedelta(seconds=59))
    assert not plan_refill(early, pending=8, running=0, now=NOW).due
