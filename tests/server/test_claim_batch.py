"""Batched claims (`/claim-batch`) and claim-on-complete (`/complete-and-claim`), on SQLite and on
Postgres: the same picking, fencing and credential rules as `/claim` and `/complete`."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient

from morphml.wire import WORKER_CREDENTIAL_HEADER
from server.db import read
from server.models import EVENT
from server.store import tasks as store
from tests.server.support import spec, worker_body

WORKER, ADMIN = "batch-worker-token-01", "batch-admin-token-001"


def _register(client: TestClient, name: str = "w", slots: int = 0, **headers: str) -> int:
    body = worker_body(name=name)
    if slots:
        body["resources"]["slots"] = slots
    response = client.post("/v1/workers", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


def _create(client: TestClient, **overrides: Any) -> int:
    response = client.post("/v1/experiments", json=spec(**overrides))
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


def _batch(client: TestClient, worker_id: int, max_tasks: int, wait: float = 0) -> Any:
    body = {"worker_id": worker_id, "wait_seconds": wait, "max_tasks": max_tasks}
    return client.post("/v1/tasks/claim-batch", json=body)


def _events(client: TestClient, kind: str) -> list[tuple[int, int | None]]:
    """(task_id, worker_id) of every event of `kind`, oldest first."""
    query = sa.select(EVENT.task_id, EVENT.worker_id).where(EVENT.kind == kind).order_by(EVENT.id)
    with read(client.app.state.engine) as connection:  # type: ignore[attr-defined]
        return [(task_id, worker_id) for task_id, worker_id in connection.execute(query)]


def _running(client: TestClient, experiment_id: int) -> list[int]:
    listing = client.get(f"/v1/experiments/{experiment_id}/tasks", params={"state": "running"})
    return sorted(task["id"] for task in listing.json()["data"])


def _done(task: dict[str, Any], accuracy: float = 0.5, **claim: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"lease_token": task["lease_token"]}
    body["metrics"] = {"val_accuracy": accuracy}
    return {**body, "claim": claim}


# --- claim-batch -------------------------------------------------------------------------------


def test_a_batch_is_up_to_max_tasks_distinct_tasks_each_under_its_own_lease(
    client: TestClient,
) -> None:
    experiment_id = _create(client, parallelism=5, budget={"max_evaluations": 20})
    worker_id = _register(client)
    answer = _batch(client, worker_id, max_tasks=3)
    assert answer.status_code == 200, answer.text
    tasks = answer.json()["data"]
    assert len(tasks) == 3
    assert len({t["id"] for t in tasks}) == len({t["lease_token"] for t in tasks}) == 3
    assert all(t["evaluator"] == {"kind": "proxy", "params": {}} for t in tasks)
    assert _running(client, experiment_id) == sorted(t["id"] for t in tasks)
    assert sorted(_events(client, "claimed")) == sorted((t["id"], worker_id) for t in tasks)
    # Each lease stands alone: one heartbeat and one complete, with its own token.
    first, second = tasks[0], tasks[1]
    beat = client.post(
        f"/v1/tasks/{first['id']}/heartbeat", json={"lease_token": first["lease_token"]}
    )
    assert beat.json()["action"] == "continue"
    crossed = {"lease_token": second["lease_token"], "metrics": {"val_accuracy": 1}}
    assert client.post(f"/v1/tasks/{first['id']}/complete", json=crossed).status_code == 409
    # Fewer pending than asked: what there is (5 created, 3 leased), never a wait for more.
    rest = _batch(client, worker_id, max_tasks=64, wait=5)
    assert rest.status_code == 200 and len(rest.json()["data"]) == 2


def test_a_batch_never_takes_the_worker_past_its_declared_slots(client: TestClient) -> None:
    _create(client, parallelism=8, budget={"max_evaluations": 20})
    worker_id = _register(client, slots=3)
    single = client.post("/v1/tasks/claim", json={"worker_id": worker_id, "wait_seconds": 0})
    assert single.status_code == 200
    batch = _batch(client, worker_id, max_tasks=8)
    assert batch.status_code == 200 and len(batch.json()["data"]) == 2  # 3 slots, 1 held
    full = _batch(client, worker_id, max_tasks=1)
    assert full.status_code == 409 and "declared slots" in full.json()["detail"]
    assert len(_events(client, "claimed")) == 3


def test_a_batch_shares_fairly_between_experiments_and_honours_priority(
    client: TestClient,
) -> None:
    older = _create(client, name="older", parallelism=4, budget={"max_evaluations": 20})
    newer = _create(client, name="newer", parallelism=4, budget={"max_evaluations": 20})
    worker_id = _register(client)
    tasks = _batch(client, worker_id, max_tasks=4).json()["data"]
    # Fair share recounted after each pick: alternating, the older experiment first on ties.
    assert [t["experiment_id"] for t in tasks] == [older, newer, older, newer]
    urgent = _create(client, name="urgent", parallelism=3, priority=5)
    tasks = _batch(client, worker_id, max_tasks=4).json()["data"]
    assert [t["experiment_id"] for t in tasks] == [urgent, urgent, urgent, older]


def test_a_batch_takes_only_tasks_that_fit(client: TestClient) -> None:
    gpu = _create(client, name="gpu", parallelism=2, resources={"gpus": 1})
    cpu = _create(client, name="cpu", parallelism=2)
    worker_id = _register(client)  # no GPUs
    tasks = _batch(client, worker_id, max_tasks=4).json()["data"]
    assert [t["experiment_id"] for t in tasks] == [cpu, cpu]
    body = {"worker_id": worker_id, "wait_seconds": 0, "max_tasks": 4, "free": {"gpus": 1}}
    tasks = client.post("/v1/tasks/claim-batch", json=body).json()["data"]
    assert [t["experiment_id"] for t in tasks] == [gpu, gpu]


def test_an_empty_queue_answers_204_after_the_wait(client: TestClient) -> None:
    worker_id = _register(client)
    started = time.monotonic()
    answer = _batch(client, worker_id, max_tasks=4, wait=0.6)
    assert answer.status_code == 204 and answer.content == b""
    assert time.monotonic() - started >= 0.6


def test_a_waiting_batch_wakes_when_tasks_are_created(
    make_client: Callable[..., TestClient],
) -> None:
    client = make_client(claim_repoll_seconds=30)  # only a wakeup can end the wait early
    worker_id = _register(client)
    result: dict[str, Any] = {}

    def claim() -> None:
        started = time.monotonic()
        result["answer"] = _batch(client, worker_id, max_tasks=4, wait=20)
        result["seconds"] = time.monotonic() - started

    waiting = threading.Thread(target=claim)
    waiting.start()
    time.sleep(0.5)
    _create(client, parallelism=3)
    waiting.join(timeout=30)
    assert result["answer"].status_code == 200, result["answer"].text
    assert 1 <= len(result["answer"].json()["data"]) <= 3 and result["seconds"] < 10


@pytest.mark.parametrize(
    "body",
    [
        {"worker_id": 1, "max_tasks": 0},
        {"worker_id": 1, "max_tasks": 65},
        {"worker_id": 1, "max_tasks": "many"},
        {"worker_id": 1, "max_tasks": 2, "wait_seconds": 61},
    ],
)
def test_a_malformed_batch_is_422(client: TestClient, body: dict[str, Any]) -> None:
    assert client.post("/v1/tasks/claim-batch", json=body).status_code == 422


def test_an_unregistered_worker_gets_404(client: TestClient) -> None:
    assert _batch(client, 777, max_tasks=2).status_code == 404


# --- complete-and-claim -------------------------------------------------------------------------


def test_complete_and_claim_completes_then_hands_over_the_next_tasks(client: TestClient) -> None:
    experiment_id = _create(client, parallelism=4, budget={"max_evaluations": 20})
    worker_id = _register(client, slots=2)
    task = _batch(client, worker_id, max_tasks=1).json()["data"][0]
    body = _done(task, 0.7, worker_id=worker_id, max_tasks=4)
    answer = client.post(f"/v1/tasks/{task['id']}/complete-and-claim", json=body)
    assert answer.status_code == 200, answer.text
    done, following = answer.json()["task"], answer.json()["next"]
    assert done["id"] == task["id"] and done["state"] == "completed"
    assert done["metrics"] == {"val_accuracy": 0.7}
    # The slot the completion freed counts: 2 slots, none held after it.
    assert len(following) == 2 and task["id"] not in {t["id"] for t in following}
    assert _running(client, experiment_id) == sorted(t["id"] for t in following)
    assert [t for t, _ in _events(client, "completed")] == [task["id"]]


def test_complete_and_claim_repeated_records_nothing_new(client: TestClient) -> None:
    experiment_id = _create(client, parallelism=2, budget={"max_evaluations": 20})
    worker_id = _register(client, slots=1)
    task = _batch(client, worker_id, max_tasks=1).json()["data"][0]
    url = f"/v1/tasks/{task['id']}/complete-and-claim"
    first = client.post(url, json=_done(task, 0.5, worker_id=worker_id))
    again = client.post(url, json=_done(task, 0.9, worker_id=worker_id))
    assert first.status_code == again.status_code == 200
    assert first.json()["task"] == again.json()["task"]
    assert again.json()["task"]["metrics"] == {"val_accuracy": 0.5}
    assert len(first.json()["next"]) == 1
    assert again.json()["next"] == []  # its one slot holds the first answer's task
    assert [t for t, _ in _events(client, "completed")] == [task["id"]]
    counts = client.get(f"/v1/experiments/{experiment_id}").json()["counts"]
    assert counts["completed"] == 1 and counts["running"] == 1


def test_complete_and_claim_with_a_stale_token_is_409_and_claims_nothing(
    client: TestClient,
) -> None:
    experiment_id = _create(client, parallelism=3)
    worker_id = _register(client)
    task = _batch(client, worker_id, max_tasks=1).json()["data"][0]
    stale = {**_done(task, worker_id=worker_id, max_tasks=2), "lease_token": "not-the-token"}
    answer = client.post(f"/v1/tasks/{task['id']}/complete-and-claim", json=stale)
    assert answer.status_code == 409
    assert _running(client, experiment_id) == [task["id"]]
    assert len(_events(client, "claimed")) == 1 and _events(client, "completed") == []
    unknown = client.post("/v1/tasks/999999/complete-and-claim", json=stale)
    assert unknown.status_code == 404 and len(_events(client, "claimed")) == 1


def test_complete_and_claim_with_nothing_pending_answers_an_empty_next(
    client: TestClient,
) -> None:
    experiment_id = _create(client, parallelism=1, budget={"max_evaluations": 1})
    worker_id = _register(client)
    task = _batch(client, worker_id, max_tasks=1).json()["data"][0]
    body = _done(task, worker_id=worker_id, max_tasks=8)
    answer = client.post(f"/v1/tasks/{task['id']}/complete-and-claim", json=body)
    assert answer.status_code == 200 and answer.json()["next"] == []
    assert client.get(f"/v1/experiments/{experiment_id}").json()["status"] == "completed"


def test_complete_and_claim_sees_the_refill_the_completion_made_due(client: TestClient) -> None:
    # parallelism 1: the only task in flight finishes, the refill asks for the next one, and
    # the claim that follows finds it instead of sending the worker back to long-poll.
    _create(client, parallelism=1, budget={"max_evaluations": 5})
    worker_id = _register(client)
    task = _batch(client, worker_id, max_tasks=1).json()["data"][0]
    for _ in range(4):
        body = _done(task, worker_id=worker_id)
        following = client.post(f"/v1/tasks/{task['id']}/complete-and-claim", json=body)
        assert following.status_code == 200 and len(following.json()["next"]) == 1
        task = following.json()["next"][0]


def test_complete_and_claim_for_an_unknown_worker_still_records_the_completion(
    client: TestClient,
) -> None:
    experiment_id = _create(client, parallelism=2)
    task = _batch(client, _register(client), max_tasks=1).json()["data"][0]
    body = _done(task, worker_id=4242)  # auth off: no credential names the worker
    answer = client.post(f"/v1/tasks/{task['id']}/complete-and-claim", json=body)
    assert answer.status_code == 200 and answer.json()["next"] == []
    assert client.get(f"/v1/experiments/{experiment_id}").json()["counts"]["completed"] == 1


def _auth(token: str, credential: str | None = None) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {token}"}
    if credential is not None:
        headers[WORKER_CREDENTIAL_HEADER] = credential
    return headers


def _registered(secured: TestClient, name: str) -> tuple[int, dict[str, str]]:
    answer = secured.post("/v1/workers", json=worker_body(name=name), headers=_auth(WORKER))
    assert answer.status_code == 201, answer.text
    return int(answer.json()["id"]), _auth(WORKER, answer.json()["credential"])


def test_a_worker_credential_cannot_batch_claim_or_claim_on_complete_as_another(
    make_client: Callable[..., TestClient],
) -> None:
    secured = make_client(admin_token=ADMIN, worker_token=WORKER)
    created = secured.post("/v1/experiments", json=spec(parallelism=4), headers=_auth(ADMIN))
    assert created.status_code == 201
    victim, victim_headers = _registered(secured, "victim")
    thief, thief_headers = _registered(secured, "thief")
    body = {"worker_id": victim, "wait_seconds": 0, "max_tasks": 2}
    assert (
        secured.post("/v1/tasks/claim-batch", json=body, headers=thief_headers).status_code == 403
    )
    no_credential = _auth(WORKER)
    assert (
        secured.post("/v1/tasks/claim-batch", json=body, headers=no_credential).status_code == 401
    )
    mine = secured.post(
        "/v1/tasks/claim-batch", json={**body, "worker_id": thief}, headers=thief_headers
    )
    task = mine.json()["data"][0]
    # The thief completes its own task but asks for the victim's next claim: refused before
    # anything is recorded, so its own completion is still open.
    url = f"/v1/tasks/{task['id']}/complete-and-claim"
    forged = _done(task, worker_id=victim, max_tasks=2)
    assert secured.post(url, json=forged, headers=thief_headers).status_code == 403
    assert _events(secured, "completed") == []
    # And the victim's credential cannot complete the thief's task.
    assert secured.post(url, json=forged, headers=victim_headers).status_code == 403
    own = secured.post(url, json=_done(task, worker_id=thief), headers=thief_headers)
    assert own.status_code == 200 and own.json()["next"][0]["id"] != task["id"]


def test_concurrent_batches_never_share_a_task(client: TestClient) -> None:
    """Postgres: SKIP LOCKED across batch claims in threads (SQLite runs them one at a time)."""
    experiment_id = _create(client, parallelism=20, budget={"max_evaluations": 20})
    workers = [_register(client, name=f"w{i}") for i in range(6)]
    engine = client.app.state.engine  # type: ignore[attr-defined]

    def drain(worker_id: int) -> list[int]:
        taken: list[int] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            found = store.claim(
                engine,
                worker_id=worker_id,
                free_gpus=0,
                free_gpu_memory_mb=0,
                labels={},
                max_tasks=4,
            )
            if isinstance(found, store.Miss):
                return taken
            taken.extend(claimed.task.id for claimed in found)
        raise AssertionError(f"worker {worker_id} still claiming after 60 s")

    with ThreadPoolExecutor(max_workers=len(workers)) as pool:
        batches = list(pool.map(drain, workers))
    claimed = [task_id for batch in batches for task_id in batch]
    assert len(claimed) == len(set(claimed)) == 20
    assert len(_running(client, experiment_id)) == 20
    assert len(_events(client, "claimed")) == 20
