"""The refill rule alone: when a refill is due, how many tasks it asks for, when it completes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from server.store.refill_rule import FAIL_FAST_FIRST, Budget, Outcomes, plan_refill, room_for

NOW = datetime(2026, 12, 1, tzinfo=UTC)


def budget(parallelism: int = 8, max_evaluations: int | None = None, created: int = 0, **kw):
    return Budget(
        parallelism=parallelism,
        max_evaluations=max_evaluations,
        tasks_created=created,
        max_seconds=kw.get("max_seconds"),
        started_at=kw.get("started_at"),
        max_failed=kw.get("max_failed"),
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
    plan = plan_refill(budget(), Outcomes(pending=4, running=3), now=NOW)
    assert plan.room == 0 and not plan.due


def test_at_the_low_water_mark_the_refill_tops_up_to_parallelism() -> None:
    plan = plan_refill(budget(), Outcomes(pending=2, running=4), now=NOW)
    assert plan.room == 2 and plan.due and not plan.cancel_pending


def test_budget_spent_and_nothing_in_flight_completes() -> None:
    plan = plan_refill(
        budget(max_evaluations=20, created=20), Outcomes(pending=0, running=0), now=NOW
    )
    assert plan.room == 0 and plan.may_complete and plan.due


def test_budget_spent_with_tasks_running_waits_for_them() -> None:
    plan = plan_refill(
        budget(max_evaluations=20, created=20), Outcomes(pending=0, running=2), now=NOW
    )
    assert not plan.due


def test_time_budget_cancels_pending_and_finishes_what_runs() -> None:
    late = budget(max_seconds=60, started_at=NOW - timedelta(seconds=61))
    plan = plan_refill(late, Outcomes(pending=5, running=2), now=NOW)
    assert plan.cancel_pending and plan.room == 0 and plan.in_flight == 2 and plan.due
    idle = plan_refill(late, Outcomes(pending=0, running=0), now=NOW)
    assert idle.due and idle.may_complete and not idle.cancel_pending


def test_time_left_is_not_out_of_time() -> None:
    early = budget(max_seconds=60, started_at=NOW - timedelta(seconds=59))
    assert not plan_refill(early, Outcomes(pending=8, running=0), now=NOW).due


def test_the_first_tasks_all_failing_gives_up() -> None:
    plan = plan_refill(budget(), Outcomes(pending=2, running=4, failed=FAIL_FAST_FIRST), now=NOW)
    assert plan.give_up is not None and plan.due and plan.room == 0
    assert "first 5 tasks all failed" in plan.give_up


def test_failures_after_a_success_do_not_trip_the_default_rule() -> None:
    outcomes = Outcomes(pending=8, running=0, failed=50, succeeded=1)
    assert plan_refill(budget(), outcomes, now=NOW).give_up is None


def test_max_failed_gives_up_whatever_succeeded() -> None:
    outcomes = Outcomes(pending=8, running=0, failed=3, succeeded=1)
    plan = plan_refill(budget(max_failed=3), outcomes, now=NOW)
    assert plan.give_up is not None and "max_failed is 3" in plan.give_up
    assert budget(max_failed=3).failures_that_matter() == 3
    assert budget().failures_that_matter() == FAIL_FAST_FIRST


def test_an_experiment_that_ends_with_only_failures_is_marked_no_success() -> None:
    spent = budget(max_evaluations=2, created=2)
    plan = plan_refill(spent, Outcomes(failed=2), now=NOW)
    assert plan.due and plan.may_complete and plan.no_success and plan.give_up is None
