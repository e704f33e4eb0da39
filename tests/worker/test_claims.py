"""Claims for idle slots in batches, claim-on-complete for busy ones, and the agent's overhead."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import httpx
import pytest

from morphml.wire import ClaimedTask, FreeResources
from tests.worker.fakes import (
    AgentThread,
    FakeEvaluation,
    FakeServer,
    make_agent,
    make_task,
    wait_for,
)
from worker.claims import ClaimDesk, Handed, least


def claimed(task_id: int) -> ClaimedTask:
    return ClaimedTask.model_validate(make_task(task_id))


def test_idle_slots_share_one_poll_and_the_next_poll_asks_for_every_waiting_slot() -> None:
    release = threading.Event()
    calls: list[tuple[int, FreeResources | None]] = []
    numbers = iter(range(1, 10))

    def claim(count: int, free: FreeResources | None) -> list[ClaimedTask]:
        calls.append((count, free))
        if len(calls) == 1:
            release.wait(5)
        return [claimed(next(numbers)) for _ in range(count)]

    desk = ClaimDesk(claim, threading.Event(), slots=3)
    got: dict[int, Handed | None] = {}

    def take(slot: int, memory: int) -> None:
        got[slot] = desk.take(slot, FreeResources(gpus=1, gpu_memory_mb=memory))

    first = threading.Thread(target=take, args=(0, 8000))
    first.start()
    wait_for(lambda: calls)
    others = [threading.Thread(target=take, args=(n, m)) for n, m in ((1, 4000), (2, 6000))]
    for thread in others:
        thread.start()
    time.sleep(0.2)
    assert len(calls) == 1  # b and c wait for the poll that is out, rather than open their own
    release.set()
    for thread in (first, *others):
        thread.join(5)
    # The first poll asked for every idle slot, with what the one waiting slot offered.
    assert calls[0] == (3, FreeResources(gpus=1, gpu_memory_mb=8000))
    ids = sorted(handed.task.id for handed in got.values() if handed is not None)
    assert ids == [1, 2, 3] and len(calls) == 1  # the others took what it brought


def test_a_poll_asks_for_the_idle_slots_only() -> None:
    calls: list[int] = []
    numbers = iter(range(1, 10))

    def claim(count: int, free: FreeResources | None) -> list[ClaimedTask]:
        calls.append(count)
        return [claimed(next(numbers))]

    desk = ClaimDesk(claim, threading.Event(), slots=3)
    assert desk.take(0, None) is not None and desk.take(1, None) is not None
    assert desk.take(2, None) is not None
    assert desk.take(0, None) is not None  # slot 0 is back: 1 and 2 are still busy
    assert calls == [3, 2, 1, 1]


def test_least_of_the_waiting_slots_offers() -> None:
    release = threading.Event()
    calls: list[FreeResources | None] = []

    def claim(count: int, free: FreeResources | None) -> list[ClaimedTask]:
        calls.append(free)
        release.wait(5)
        return []

    desk = ClaimDesk(claim, threading.Event(), slots=3)
    first = threading.Thread(target=desk.take, args=(0, FreeResources(gpus=1, gpu_memory_mb=9)))
    first.start()
    wait_for(lambda: calls)
    offers = (
        (1, FreeResources(gpus=1, gpu_memory_mb=4)),
        (2, FreeResources(gpus=1, gpu_memory_mb=6)),
    )
    waiting = [threading.Thread(target=desk.take, args=offer) for offer in offers]
    for thread in waiting:
        thread.start()
    time.sleep(0.2)
    release.set()
    for thread in (first, *waiting):
        thread.join(5)
    assert calls[1] == FreeResources(gpus=1, gpu_memory_mb=4)  # the least of slots 1 and 2


def test_an_empty_poll_returns_none_and_stopping_ends_the_wait() -> None:
    stopping = threading.Event()
    desk = ClaimDesk(lambda count, free: [], stopping, slots=1)
    assert desk.take(0, None) is None
    stopping.set()
    assert desk.take(0, None) is None
    desk.give([claimed(4)], time.monotonic())
    assert [handed.task.id for handed in desk.drain()] == [4] and desk.drain() == []


def test_least_ignores_slots_that_offer_everything_registered() -> None:
    assert least([None, None]) is None
    offers = [None, FreeResources(gpus=1, gpu_memory_mb=500), FreeResources(gpus=0)]
    assert least(offers) == FreeResources(gpus=0, gpu_memory_mb=0)


def test_a_busy_slot_completes_and_claims_in_one_request(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="morphml.worker")
    server = FakeServer(tasks=[make_task(i) for i in range(1, 5)], modern=True)
    run = AgentThread(make_agent(server, tmp_path))
    wait_for(lambda: server.bodies("/v1/tasks/4/complete-and-claim"))
    wait_for(lambda: len(server.bodies("/claim-batch")) >= 2)  # back to the long-poll
    run.stop()
    paths = [path for _, path, _ in server.calls]
    assert "/v1/tasks/claim" not in paths and not any(p.endswith("/complete") for p in paths)
    assert [p for p in paths if p.endswith("complete-and-claim")] == [
        f"/v1/tasks/{i}/complete-and-claim" for i in range(1, 5)
    ]
    assert paths.index("/v1/tasks/1/complete-and-claim") == paths.index("/v1/tasks/claim-batch") + 1
    body = server.bodies("/v1/tasks/1/complete-and-claim")[0]
    assert body["lease_token"] == "token-1" and body["metrics"] == {"val_accuracy": 0.9}
    assert body["claim"]["worker_id"] == 1 and body["claim"]["max_tasks"] == 1
    assert "task overhead: n=4 p50=" in caplog.text


def test_idle_slots_claim_in_one_batch(tmp_path: Path) -> None:
    server = FakeServer(tasks=[make_task(i) for i in range(1, 4)], modern=True)
    evaluations = [FakeEvaluation(seconds=0.5) for _ in range(3)]
    agent = make_agent(server, tmp_path, evaluations, slots=3)
    agent.idle_pause = 0.3  # lets the three slot threads reach the desk together
    run = AgentThread(agent)
    wait_for(lambda: all(server.bodies(f"/v1/tasks/{i}/complete-and-claim") for i in (1, 2, 3)))
    run.stop()
    asked = [body["max_tasks"] for body in server.bodies("/claim-batch")]
    assert max(asked) >= 2  # some poll asked for more than one slot


def test_tasks_claimed_but_not_started_are_handed_back_when_stopping(tmp_path: Path) -> None:
    two = httpx.Response(200, json={"data": [make_task(1), make_task(2)]})
    server = FakeServer(modern=True, script={"/v1/tasks/claim-batch": [two]})
    agent = make_agent(server, tmp_path, [FakeEvaluation(seconds=0.5)])
    run = AgentThread(agent)
    wait_for(lambda: server.bodies("/claim-batch"))
    time.sleep(0.1)
    run.stop()
    # One slot: task 2 waited at the desk and goes back at once, not after its lease.
    (fail,) = server.bodies("/v1/tasks/2/fail")
    assert fail["retryable"] is True and "shutting down" in fail["error"]
    assert server.bodies("/v1/tasks/1/complete")  # stopping: completed without a claim


def test_an_older_server_gets_plain_claims_and_completions(tmp_path: Path) -> None:
    server = FakeServer(tasks=[make_task(1), make_task(2)])
    run = AgentThread(make_agent(server, tmp_path))
    wait_for(lambda: server.bodies("/v1/tasks/2/complete"))
    run.stop()
    paths = [path for _, path, _ in server.calls]
    assert paths.count("/v1/tasks/claim-batch") == 1  # tried once, then one at a time
    assert paths.count("/v1/tasks/1/complete-and-claim") == 1
    assert "/v1/tasks/2/complete-and-claim" not in paths
    assert server.bodies("/v1/tasks/1/complete") and server.bodies("/v1/tasks/claim")
