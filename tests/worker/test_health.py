"""A sick machine (full or read-only disk, no room for processes) stops claiming and says why."""

from __future__ import annotations

import errno
import logging
import time
from pathlib import Path
from typing import Any

import pytest

from tests.worker.fakes import AgentThread, Disk, FakeEvaluation, FakeServer, make_agent, make_task
from tests.worker.fakes import wait_for as wait_until
from worker.health import Health
from worker.runner import Outcome
from worker.task_run import start_child


@pytest.fixture(autouse=True)
def _logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="morphml.worker")


def claims(server: FakeServer) -> int:
    return len(server.bodies("/v1/tasks/claim"))


def test_a_full_disk_stops_claims_after_three_tasks_and_they_do_not_cost_attempts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    work = tmp_path / "work"
    space = Disk(monkeypatch, work)

    def start(task_dir: Path, spec: dict[str, Any], env: dict[str, str]) -> Any:
        # The real start while the disk is full (it fails writing spec.json), a fake once freed.
        return start_child(task_dir, spec, env) if space.full else FakeEvaluation()

    server = FakeServer(tasks=[make_task(i) for i in range(1, 11)])
    agent = make_agent(server, work, start_evaluation=start)
    agent.health.first_pause = 0.2
    assert agent.health.pause_before_claim() == 0  # the check before the first claim passed
    space.full = True
    run = AgentThread(agent)
    wait_until(lambda: "unhealthy after 3 local failures" in caplog.text)
    time.sleep(1.0)  # probes every 0.2 s, 0.4 s, ...: each fails, the disk is still full
    assert claims(server) == 3
    for task_id in (1, 2, 3):
        (fail,) = server.bodies(f"/v1/tasks/{task_id}/fail")  # posted although the outbox is full
        assert fail["retryable"] is True and fail["environment"] is True
        assert "No space left on device" in fail["error"]
    assert "Not claiming tasks" in caplog.text and "still unhealthy" in caplog.text
    assert f"free space on the disk that holds {work}" in caplog.text

    space.full = False
    wait_until(lambda: server.bodies("/v1/tasks/4/complete"))
    run.stop()
    assert "health check passed" in caplog.text and "healthy again" in caplog.text


def test_an_outbox_that_refuses_results_gets_them_posted_directly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    work = tmp_path / "work"
    outbox = Disk(monkeypatch, work / "outbox")
    server = FakeServer(tasks=[make_task(i) for i in range(1, 6)])
    agent = make_agent(server, work)
    agent.health.first_pause = 60
    assert agent.health.pause_before_claim() == 0
    outbox.full = True
    run = AgentThread(agent)
    wait_until(lambda: "unhealthy after 3" in caplog.text)
    time.sleep(0.3)
    run.stop()
    assert claims(server) == 3
    for task_id in (1, 2, 3):
        assert server.bodies(f"/v1/tasks/{task_id}/complete") == [
            {"lease_token": f"token-{task_id}", "metrics": {"val_accuracy": 0.9}}
        ]
    assert "the outbox cannot keep its result" in caplog.text
    assert not list((work / "outbox").glob("*.json"))


def test_a_work_dir_that_cannot_hold_task_dirs_claims_nothing_until_repaired(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    (work / "tasks").write_text("a file where the task dirs belong")  # fails even for root
    server = FakeServer(tasks=[make_task(1)])
    agent = make_agent(server, work)
    agent.health.first_pause = 0.2
    run = AgentThread(agent)
    wait_until(lambda: "unhealthy:" in caplog.text)
    time.sleep(0.5)
    assert claims(server) == 0
    assert str(work / "tasks") in caplog.text and "To fix: remove what is in the way" in caplog.text

    (work / "tasks").unlink()
    wait_until(lambda: server.bodies("/v1/tasks/1/complete"))
    run.stop()


def test_a_child_that_dies_on_a_full_disk_is_an_environment_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    work = tmp_path / "work"
    space = Disk(monkeypatch, work)
    died = FakeEvaluation(outcome=Outcome(error="exited with code 1 without a result"))
    server = FakeServer(tasks=[make_task(1)])
    agent = make_agent(server, work, [died])
    assert agent.health.pause_before_claim() == 0
    space.full = True
    run = AgentThread(agent)
    (fail,) = wait_until(lambda: server.bodies("/v1/tasks/1/fail"))
    run.stop()
    assert fail["environment"] is True and fail["retryable"] is True
    assert "without a result" in fail["error"] and "No space left" in fail["error"]


def test_a_child_that_crashes_on_a_healthy_machine_is_the_candidates_failure(
    tmp_path: Path,
) -> None:
    died = FakeEvaluation(outcome=Outcome(error="exited with code 1 without a result"))
    server = FakeServer(tasks=[make_task(1)])
    run = AgentThread(make_agent(server, tmp_path, [died]))
    (fail,) = wait_until(lambda: server.bodies("/v1/tasks/1/fail"))
    run.stop()
    assert "environment" not in fail and fail["retryable"] is True


def test_the_breaker_backs_off_doubling_and_one_good_task_closes_it(tmp_path: Path) -> None:
    verdicts: list[OSError | None] = [None, OSError(errno.EROFS, "Read-only file system"), None]

    def probe(work_dir: Path) -> None:
        verdict = verdicts.pop(0)
        if verdict is not None:
            raise verdict

    health = Health(tmp_path, threshold=2, first_pause=0.1, max_pause=0.3, probe=probe)
    assert health.pause_before_claim() == 0 and health.healthy
    health.failure("one", None)
    assert health.pause_before_claim() == 0  # one failure is not a pattern
    health.failure("two", OSError(errno.EROFS, "Read-only file system"))
    assert not health.healthy and 0 < health.pause_before_claim() <= 0.1
    time.sleep(0.11)
    assert health.pause_before_claim() == pytest.approx(0.2, abs=0.01)  # probe failed: doubled
    time.sleep(0.21)
    assert health.pause_before_claim() == 0  # probe passed: one trial
    assert not health.healthy
    health.success()
    assert health.healthy
    health.failure("again", None)
    assert health.pause_before_claim() == 0  # the count started over


def test_a_task_that_ends_well_while_the_breaker_is_open_does_not_close_it(tmp_path: Path) -> None:
    def sick(work_dir: Path) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    health = Health(tmp_path, threshold=1, first_pause=0.05, max_pause=1.0)
    assert health.pause_before_claim() == 0
    health.probe = sick
    health.failure("full", OSError(errno.ENOSPC, "No space left on device"))
    health.success()  # a long task that was claimed before the disk filled up
    assert not health.healthy
    time.sleep(0.06)
    assert health.pause_before_claim() == pytest.approx(0.1, abs=0.01)  # still backing off
