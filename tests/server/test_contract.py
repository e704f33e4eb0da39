"""The REST API contract, on SQLite and on Postgres: experiments, workers, claims and leases."""

from __future__ import annotations

import time
from typing import Any

from starlette.testclient import TestClient

from tests.server.support import spec, worker_body


def _register(client: TestClient, **kwargs: Any) -> int:
    response = client.post("/v1/workers", json=worker_body(**kwargs))
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


def _claim(client: TestClient, worker_id: int, **body: Any) -> dict[str, Any] | None:
    response = client.post(
        "/v1/tasks/claim", json={"worker_id": worker_id, "wait_seconds": 0, **body}
    )
    assert response.status_code in (200, 204), response.text
    return response.json() if response.status_code == 200 else None


def _create(client: TestClient, **overrides: Any) -> dict[str, Any]:
    response = client.post("/v1/experiments", json=spec(**overrides))
    assert response.status_code == 201, response.text
    return dict(response.json())


def test_create_experiment_queues_parallelism_tasks(client: TestClient) -> None:
    experiment = _create(client, parallelism=3)
    assert experiment["status"] == "running"
    assert experiment["counts"]["pending"] == 3
    assert experiment["best"] is None
    listed = client.get("/v1/experiments", params={"limit": 1}).json()
    assert listed["count"] == 1 and listed["data"][0]["id"] == experiment["id"]


def test_refill_waits_for_the_low_water_mark_then_tops_up(client: TestClient) -> None:
    # parallelism 8: low-water mark 6, so outcomes are told and new tasks asked two at a time.
    experiment = _create(client, parallelism=8, budget={"max_evaluations": 100})
    worker_id = _register(client)
    created = []
    for _ in range(4):
        task = _claim(client, worker_id)
        assert task is not None
        body = {"lease_token": task["lease_token"], "metrics": {"val_accuracy": 0.5}}
        assert client.post(f"/v1/tasks/{task['id']}/complete", json=body).status_code == 200
        now = client.get(f"/v1/experiments/{experiment['id']}").json()
        created.append(now["tasks_created"])
    assert created == [8, 10, 10, 12]


def test_claim_complete_runs_experiment_to_its_budget(client: TestClient) -> None:
    experiment = _create(client, budget={"max_evaluations": 5})
    worker_id = _register(client)
    for i in range(5):
        task = _claim(client, worker_id)
        assert task is not None and task["experiment_id"] == experiment["id"]
        assert task["evaluator"] == {"kind": "proxy", "params": {}}
        done = client.post(
            f"/v1/tasks/{task['id']}/complete",
            json={"lease_token": task["lease_token"], "metrics": {"val_accuracy": i / 10}},
        )
        assert done.status_code == 200 and done.json()["state"] == "completed"
    assert _claim(client, worker_id) is None
    final = client.get(f"/v1/experiments/{experiment['id']}").json()
    assert final["status"] == "completed"
    assert final["counts"]["completed"] == 5 and final["tasks_created"] == 5
    assert final["best"]["value"] == 0.4
    best = client.get(f"/v1/experiments/{experiment['id']}/best").json()
    assert best["metrics"] == {"val_accuracy": 0.4}
    keys = [
        t["candidate_key"]
        for t in client.get(f"/v1/experiments/{experiment['id']}/tasks").json()["data"]
    ]
    assert len(keys) == len(set(keys)) == 5


def test_stale_token_gets_409_and_changes_nothing(client: TestClient) -> None:
    _create(client)
    task = _claim(client, _register(client))
    assert task is not None
    url = f"/v1/tasks/{task['id']}"
    assert (
        client.post(
            f"{url}/complete", json={"lease_token": "nope", "metrics": {"val_accuracy": 1}}
        ).status_code
        == 409
    )
    assert client.post(f"{url}/heartbeat", json={"lease_token": "nope"}).status_code == 409
    assert client.post(f"{url}/fail", json={"lease_token": "nope", "error": "x"}).status_code == 409
    assert client.post("/v1/tasks/999999/heartbeat", json={"lease_token": "x"}).status_code == 404
    stored = client.get(
        f"/v1/experiments/{task['experiment_id']}/tasks", params={"state": "running"}
    ).json()
    assert [t["id"] for t in stored["data"]] == [task["id"]]
    assert stored["data"][0]["metrics"] is None


def test_repeated_completion_is_idempotent(client: TestClient) -> None:
    _create(client)
    task = _claim(client, _register(client))
    assert task is not None
    body = {"lease_token": task["lease_token"], "metrics": {"val_accuracy": 0.5}}
    first = client.post(f"/v1/tasks/{task['id']}/complete", json=body)
    again = client.post(
        f"/v1/tasks/{task['id']}/complete", json={**body, "metrics": {"val_accuracy": 0.9}}
    )
    assert first.status_code == again.status_code == 200
    assert first.json() == again.json()
    experiment = client.get(f"/v1/experiments/{task['experiment_id']}").json()
    assert experiment["counts"]["completed"] == 1 and experiment["tasks_created"] == 3


def test_heartbeat_extends_lease_and_records_metrics(client: TestClient) -> None:
    _create(client, lease_seconds=5)
    task = _claim(client, _register(client))
    assert task is not None
    time.sleep(0.05)
    beat = client.post(
        f"/v1/tasks/{task['id']}/heartbeat",
        json={
            "lease_token": task["lease_token"],
            "progress": 0.5,
            "step": 1,
            "metrics": {"val_accuracy": 0.3},
        },
    )
    assert beat.status_code == 200, beat.text
    assert beat.json()["action"] == "continue"
    assert beat.json()["lease_expires_at"] > task["lease_expires_at"]
    stored = client.get(
        f"/v1/experiments/{task['experiment_id']}/tasks", params={"state": "running"}
    ).json()["data"][0]
    assert stored["progress"] == 0.5 and stored["intermediate"] == {"1": {"val_accuracy": 0.3}}


def test_expired_lease_is_reassigned_and_old_token_fenced(client: TestClient) -> None:
    _create(client, lease_seconds=1, parallelism=1, max_attempts=2)
    first_worker, second_worker = _register(client, name="a"), _register(client, name="b")
    first = _claim(client, first_worker)
    assert first is not None and first["attempt"] == 1
    second = _claim(client, second_worker, wait_seconds=5)
    assert second is not None and second["id"] == first["id"] and second["attempt"] == 2
    stale = client.post(
        f"/v1/tasks/{first['id']}/complete",
        json={"lease_token": first["lease_token"], "metrics": {"val_accuracy": 1.0}},
    )
    assert stale.status_code == 409
    done = client.post(
        f"/v1/tasks/{second['id']}/complete",
        json={"lease_token": second["lease_token"], "metrics": {"val_accuracy": 0.2}},
    )
    assert done.status_code == 200 and done.json()["metrics"] == {"val_accuracy": 0.2}


def test_lease_expiry_fails_task_when_attempts_exhausted(client: TestClient) -> None:
    experiment = _create(
        client, lease_seconds=1, parallelism=1, max_attempts=1, budget={"max_evaluations": 1}
    )
    task = _claim(client, _register(client))
    assert task is not None
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        state = client.get(f"/v1/experiments/{experiment['id']}").json()
        if state["status"] != "running":
            break
        time.sleep(0.1)
    # The reaper fails the task (its lease expired with no attempt left), then the refill that
    # outcome made due ends the experiment: its budget is spent and nothing is in flight; with
    # no success it is failed, not completed. A read shows one snapshot: status and counts agree.
    assert state["counts"]["failed"] == 1
    assert state["status"] == "failed"
    assert state["error"] == "every task failed; first error: lease expired (no heartbeat)"


def test_fail_retryable_requeues_then_fails(client: TestClient) -> None:
    _create(client, parallelism=1, max_attempts=2)
    worker_id = _register(client)
    task = _claim(client, worker_id)
    assert task is not None
    retried = client.post(
        f"/v1/tasks/{task['id']}/fail",
        json={"lease_token": task["lease_token"], "error": "CUDA OOM", "retryable": True},
    ).json()
    assert retried["state"] == "pending" and retried["attempt"] == 2
    # Not straight back to the worker that failed it: another worker takes the retry.
    again = _claim(client, _register(client, name="other"))
    assert again is not None and again["id"] == task["id"]
    failed = client.post(
        f"/v1/tasks/{task['id']}/fail",
        json={"lease_token": again["lease_token"], "error": "CUDA OOM", "retryable": True},
    ).json()
    assert failed["state"] == "failed"
    nxt = _claim(client, worker_id)
    assert nxt is not None and nxt["id"] != task["id"]


def test_claim_long_polls_until_a_task_appears(client: TestClient) -> None:
    worker_id = _register(client)
    started = time.monotonic()
    assert _claim(client, worker_id, wait_seconds=0.3) is None
    assert time.monotonic() - started >= 0.3


def test_claim_respects_gpus_labels_and_priority(client: TestClient) -> None:
    gpu = _create(client, name="gpu", resources={"gpus": 1}, parallelism=1)
    labelled = _create(
        client, name="lab", resources={"gpus": 0, "labels": {"zone": "b"}}, parallelism=1
    )
    low = _create(client, name="low", priority=-5, parallelism=1)
    high = _create(client, name="high", priority=5, parallelism=1)
    cpu_worker = _register(client, name="cpu", labels={"zone": "a"})
    order = [t["experiment_id"] for t in iter(lambda: _claim(client, cpu_worker), None)]
    assert order == [high["id"], low["id"]]
    gpu_worker = _register(client, name="gpu", gpus=1, labels={"zone": "b"})
    rest = {t["experiment_id"] for t in iter(lambda: _claim(client, gpu_worker), None)}
    assert rest == {gpu["id"], labelled["id"]}


def test_fair_share_between_equal_priority_experiments(client: TestClient) -> None:
    first = _create(client, name="one", parallelism=4)
    second = _create(client, name="two", parallelism=4)
    worker_id = _register(client)
    claimed = [_claim(client, worker_id) for _ in range(4)]
    by_experiment = [t["experiment_id"] for t in claimed if t]
    assert by_experiment.count(first["id"]) == by_experiment.count(second["id"]) == 2


def test_pause_resume_cancel(client: TestClient) -> None:
    experiment = _create(client, parallelism=2)
    worker_id = _register(client)
    running = _claim(client, worker_id)
    assert running is not None
    url = f"/v1/experiments/{experiment['id']}"
    assert client.post(f"{url}/pause").json()["status"] == "paused"
    assert _claim(client, worker_id) is None
    assert client.post(f"{url}/pause").status_code == 409
    assert client.post(f"{url}/resume").json()["status"] == "running"
    cancelled = client.post(f"{url}/cancel").json()
    assert cancelled["status"] == "cancelled" and cancelled["counts"]["cancelled"] == 2
    beat = client.post(
        f"/v1/tasks/{running['id']}/heartbeat", json={"lease_token": running["lease_token"]}
    )
    assert beat.json()["action"] == "stop" and beat.json()["reason"] == "cancelled"
    assert client.post(f"{url}/resume").status_code == 409


def test_pareto_front_for_two_objectives(client: TestClient) -> None:
    objectives = [
        {"metric": "acc", "direction": "maximize"},
        {"metric": "params", "direction": "minimize"},
    ]
    experiment = _create(
        client, objectives=objectives, parallelism=3, budget={"max_evaluations": 3}
    )
    worker_id = _register(client)
    results = [{"acc": 0.9, "params": 100}, {"acc": 0.8, "params": 10}, {"acc": 0.7, "params": 50}]
    ids = []
    for metrics in results:
        task = _claim(client, worker_id)
        assert task is not None
        ids.append(task["id"])
        client.post(
            f"/v1/tasks/{task['id']}/complete",
            json={"lease_token": task["lease_token"], "metrics": metrics},
        )
    front = client.get(f"/v1/experiments/{experiment['id']}/pareto").json()
    assert [t["id"] for t in front["data"]] == ids[:2]


def test_workers_listing_shows_current_tasks(client: TestClient) -> None:
    _create(client)
    worker_id = _register(client)
    task = _claim(client, worker_id)
    assert task is not None
    workers = client.get("/v1/workers").json()
    assert workers["data"][0]["current_tasks"] == [task["id"]]
    assert workers["data"][0]["status"] == "online"


def test_unknown_ids_are_404(client: TestClient) -> None:
    assert client.get("/v1/experiments/12345").status_code == 404
    assert client.post("/v1/experiments/12345/pause").status_code == 404
    assert (
        client.post("/v1/tasks/claim", json={"worker_id": 777, "wait_seconds": 0}).status_code
        == 404
    )
    assert client.get("/v1/experiments/12345/best").json()["detail"]


def _beat(
    client: TestClient, task: dict[str, Any], step: int | None, value: float
) -> dict[str, Any]:
    body = {"lease_token": task["lease_token"], "step": step, "metrics": {"val_accuracy": value}}
    response = client.post(f"/v1/tasks/{task['id']}/heartbeat", json=body)
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_median_pruner_stops_a_lagging_task(client: TestClient) -> None:
    pruner = {"name": "median", "params": {"warmup_steps": 0, "min_tasks": 1}}
    experiment = _create(client, pruner=pruner, parallelism=2)
    worker_id = _register(client)
    leader, laggard = _claim(client, worker_id), _claim(client, worker_id)
    assert leader is not None and laggard is not None
    assert _beat(client, leader, 1, 0.9)["action"] == "continue"
    answer = _beat(client, laggard, 1, 0.1)
    assert answer["action"] == "stop" and "median" in answer["reason"]
    state = client.get(f"/v1/experiments/{experiment['id']}").json()
    assert state["counts"]["pruned"] == 1 and state["counts"]["pending"] == 1
    again = client.post(
        f"/v1/tasks/{laggard['id']}/heartbeat", json={"lease_token": laggard["lease_token"]}
    )
    assert again.json()["action"] == "stop"


def test_time_budget_completes_experiment(client: TestClient) -> None:
    experiment = _create(client, budget={"max_evaluations": None, "max_seconds": 0.5})
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        state = client.get(f"/v1/experiments/{experiment['id']}").json()
        if state["status"] == "completed":
            break
        time.sleep(0.1)
    assert state["status"] == "completed" and state["counts"]["cancelled"] == 2


def test_metrics_endpoint_counts_tasks_by_state(client: TestClient) -> None:
    _create(client)
    _claim(client, _register(client))
    text = client.get("/metrics").text
    assert 'morphml_tasks{state="pending"} 1.0' in text
    assert "morphml_claims_total 1.0" in text
    assert "morphml_request_seconds_bucket" in text


def test_silent_workers_go_offline(make_client: Any) -> None:
    client = make_client(worker_offline_seconds=0.3)
    worker_id = _register(client)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        (worker,) = client.get("/v1/workers").json()["data"]
        if worker["status"] == "offline":
            break
        time.sleep(0.1)
    assert worker["status"] == "offline"
    _claim(client, worker_id)
    assert client.get("/v1/workers").json()["data"][0]["status"] == "online"


def test_reports_are_appended_a_repeated_step_keeps_its_last_and_a_task_holds_at_most_1000(
    client: TestClient, monkeypatch: Any
) -> None:
    monkeypatch.setattr("server.store.intermediate.MAX_STEPS_PER_TASK", 3)
    _create(client)
    task = _claim(client, _register(client))
    assert task is not None
    for step, value in [(1, 0.1), (1, 0.2), (2, 0.3), (None, 0.4), (5, 0.5)]:
        assert _beat(client, task, step, value)["action"] == "continue"
    stored = client.get(
        f"/v1/experiments/{task['experiment_id']}/tasks", params={"state": "running"}
    ).json()["data"][0]
    # Three reports kept (the cap): step 1 twice (the last wins), step 2; the rest refused.
    assert stored["intermediate"] == {"1": {"val_accuracy": 0.2}, "2": {"val_accuracy": 0.3}}


def test_a_pruned_task_keeps_its_last_report_as_its_metrics(client: TestClient) -> None:
    pruner = {"name": "median", "params": {"warmup_steps": 0, "min_tasks": 1}}
    experiment = _create(client, pruner=pruner, parallelism=2)
    worker_id = _register(client)
    good, bad = _claim(client, worker_id), _claim(client, worker_id)
    assert good is not None and bad is not None
    assert _beat(client, good, 1, 0.9)["action"] == "continue"
    assert _beat(client, bad, 1, 0.1)["action"] == "stop"
    pruned = client.get(
        f"/v1/experiments/{experiment['id']}/tasks", params={"state": "pruned"}
    ).json()["data"]
    assert [t["id"] for t in pruned] == [bad["id"]]
    assert pruned[0]["metrics"] == {"val_accuracy": 0.1}
    assert pruned[0]["intermediate"] == {"1": {"val_accuracy": 0.1}}


def _fail(client: TestClient, task: dict[str, Any], error: str) -> None:
    body = {"lease_token": task["lease_token"], "error": error, "retryable": False}
    assert client.post(f"/v1/tasks/{task['id']}/fail", json=body).status_code == 200


def test_an_experiment_whose_first_tasks_all_fail_fails_with_the_first_error(
    client: TestClient,
) -> None:
    experiment = _create(client, parallelism=8, budget={"max_evaluations": 16})
    worker_id = _register(client)
    for index in range(5):
        task = _claim(client, worker_id)
        assert task is not None
        _fail(client, task, f"boom {index}")
    state = client.get(f"/v1/experiments/{experiment['id']}").json()
    assert state["status"] == "failed"
    assert "first 5 tasks all failed" in state["error"] and "boom 0" in state["error"]
    assert state["counts"]["pending"] == 0 and state["counts"]["running"] == 0


def test_max_failed_counts_failures_after_successes(client: TestClient) -> None:
    experiment = _create(client, parallelism=4, budget={"max_evaluations": 20, "max_failed": 2})
    worker_id = _register(client)
    done = _claim(client, worker_id)
    assert done is not None
    body = {"lease_token": done["lease_token"], "metrics": {"val_accuracy": 0.5}}
    assert client.post(f"/v1/tasks/{done['id']}/complete", json=body).status_code == 200
    for index in range(2):
        task = _claim(client, worker_id)
        assert task is not None
        _fail(client, task, f"boom {index}")
    state = client.get(f"/v1/experiments/{experiment['id']}").json()
    assert state["status"] == "failed" and "max_failed is 2" in state["error"]


def test_a_run_that_ends_with_only_failures_is_failed_not_completed(client: TestClient) -> None:
    experiment = _create(client, parallelism=2, budget={"max_evaluations": 2})
    worker_id = _register(client)
    for index in range(2):
        task = _claim(client, worker_id)
        assert task is not None
        _fail(client, task, f"boom {index}")
    state = client.get(f"/v1/experiments/{experiment['id']}").json()
    assert state["status"] == "failed" and state["error"].startswith("every task failed")


def _register_with_slots(client: TestClient, name: str, slots: int) -> int:
    body = worker_body(name=name)
    body["resources"]["slots"] = slots
    response = client.post("/v1/workers", json=body)
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


def test_an_environment_failure_uses_no_attempt_and_goes_to_another_worker(
    client: TestClient,
) -> None:
    _create(client, parallelism=1, max_attempts=1, budget={"max_evaluations": 1})
    broken, healthy = _register(client, name="broken"), _register(client, name="healthy")
    task = _claim(client, broken)
    assert task is not None
    body = {"lease_token": task["lease_token"], "error": "disk full", "environment": True}
    failed = client.post(f"/v1/tasks/{task['id']}/fail", json=body)
    assert failed.status_code == 200, failed.text
    assert failed.json()["state"] == "pending" and failed.json()["attempt"] == 1
    assert _claim(client, broken) is None  # not straight back to the worker that gave it up
    again = _claim(client, healthy)
    assert again is not None and again["id"] == task["id"] and again["attempt"] == 1


def test_environment_failures_count_as_attempts_past_five(client: TestClient) -> None:
    _create(client, parallelism=1, max_attempts=1, budget={"max_evaluations": 1})
    workers = [_register(client, name=f"w{i}") for i in range(6)]
    for index, worker_id in enumerate(workers):
        task = _claim(client, worker_id)
        assert task is not None, f"claim {index}"
        body = {"lease_token": task["lease_token"], "error": "disk full", "environment": True}
        state = client.post(f"/v1/tasks/{task['id']}/fail", json=body).json()["state"]
        assert state == ("pending" if index < 5 else "failed")


def _wait_for_requeue(client: TestClient, experiment: dict[str, Any]) -> None:
    """Until the reaper has taken the (1 s) lease back: the task is pending again."""
    deadline = time.monotonic() + 10
    while client.get(f"/v1/experiments/{experiment['id']}").json()["counts"]["pending"] == 0:
        assert time.monotonic() < deadline, "the lease never expired"
        time.sleep(0.1)


def test_a_late_result_counts_while_the_requeued_task_waits_unclaimed(client: TestClient) -> None:
    experiment = _create(client, lease_seconds=1, parallelism=1, budget={"max_evaluations": 1})
    first, second = _register(client, name="a"), _register(client, name="b")
    task = _claim(client, first)
    assert task is not None
    _wait_for_requeue(client, experiment)
    body = {"lease_token": task["lease_token"], "metrics": {"val_accuracy": 0.7}}
    late = client.post(f"/v1/tasks/{task['id']}/complete", json=body)
    assert late.status_code == 200, late.text
    assert late.json()["state"] == "completed"
    assert _claim(client, second) is None  # nothing left to train again


def test_a_late_result_never_counts_over_a_newer_lease(client: TestClient) -> None:
    experiment = _create(client, lease_seconds=1, parallelism=1, budget={"max_evaluations": 1})
    first, second = _register(client, name="a"), _register(client, name="b")
    task = _claim(client, first)
    assert task is not None
    _wait_for_requeue(client, experiment)
    assert _claim(client, second) is not None
    body = {"lease_token": task["lease_token"], "metrics": {"val_accuracy": 0.7}}
    assert client.post(f"/v1/tasks/{task['id']}/complete", json=body).status_code == 409


def test_a_worker_holds_no_more_leases_than_its_declared_slots(client: TestClient) -> None:
    _create(client, parallelism=4, budget={"max_evaluations": 10})
    worker_id = _register_with_slots(client, "one-slot", 1)
    assert _claim(client, worker_id) is not None
    hoard = client.post("/v1/tasks/claim", json={"worker_id": worker_id, "wait_seconds": 0})
    assert hoard.status_code == 409 and "declared slots" in hoard.json()["detail"]


def _status_of(client: TestClient, worker_id: int) -> str:
    workers = client.get("/v1/workers").json()["data"]
    return str(next(w["status"] for w in workers if w["id"] == worker_id))


def test_a_worker_that_stops_polling_is_offline_within_two_poll_periods(
    client: TestClient, monkeypatch: Any
) -> None:
    monkeypatch.setattr("server.workers.SILENCE_SLACK_SECONDS", 0.5)
    idle, busy = _register(client, name="idle"), _register(client, name="busy")
    _create(client, parallelism=1, lease_seconds=60)
    assert _claim(client, busy) is not None  # holds a live lease from now on
    body = {"worker_id": idle, "wait_seconds": 0.5}
    assert client.post("/v1/tasks/claim", json=body).status_code == 204
    assert _status_of(client, idle) == "online"
    time.sleep(2.0)  # two polls of 0.5 s and the slack: it stopped polling (as if killed)
    assert _status_of(client, idle) == "offline"
    assert _status_of(client, busy) == "online"  # silent too, but its lease is alive
