"""Warm starts of ASHA promotions in process, on SQLite and Postgres with the file store: the
claim names the lower rung's weights, the promotion's lease reads exactly them, and the keep
policy spares them until the promotion finishes."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from morphml.wire import LEASE_TOKEN_HEADER
from server.artifacts import cleanup
from tests.server.artifact_support import put, sha
from tests.server.support import spec

ASHA = {"name": "asha", "params": {"min_budget": 1, "max_budget": 3, "eta": 3}}
# Rung 0 scores; the best (0.9) is promoted once three are in.
SCORES = (0.5, 0.9, 0.7)


@pytest.fixture
def client(make_client: Callable[..., TestClient], tmp_path: Path) -> TestClient:
    return make_client(artifacts_url=f"file://{tmp_path / 'artifacts'}")


def claim(client: TestClient, worker_id: int) -> dict[str, Any]:
    answer = client.post("/v1/tasks/claim", json={"worker_id": worker_id, "wait_seconds": 0})
    assert answer.status_code == 200, answer.text
    return {**answer.json(), "worker_headers": {}}


def complete(client: TestClient, task: dict[str, Any], value: float) -> None:
    """Complete, then wait for the clean-up it started: a late one would race the next
    completion's promotion (and, by design, drop weights no promotion needed yet)."""
    body = {"lease_token": task["lease_token"], "metrics": {"val_accuracy": value}}
    assert client.post(f"/v1/tasks/{task['id']}/complete", json=body).status_code == 200
    deadline = time.monotonic() + 10
    while cleanup.in_flight() and time.monotonic() < deadline:
        time.sleep(0.01)


def rung_zero_then_promotion(
    client: TestClient, policy: dict[str, Any], scores: tuple[float, ...] = SCORES
) -> tuple[dict[int, dict[str, Any]], dict[str, Any]]:
    """Three rung-0 tasks with weights, completed one by one; then the promotion, claimed."""
    body = spec(optimizer=ASHA, parallelism=1, budget={"max_evaluations": 4}, artifacts=policy)
    assert client.post("/v1/experiments", json=body).status_code == 201
    worker = client.post("/v1/workers", json={"name": "w"}).json()["id"]
    lower: dict[int, dict[str, Any]] = {}
    for value in scores:
        task = claim(client, worker)
        assert task["budget"] == 1 and task["warm_start"] is None
        assert put(client, task, "weights.pt", f"w{value}".encode()).status_code == 201
        complete(client, task, value)
        lower[task["id"]] = {**task, "value": value}
    return lower, claim(client, worker)


def test_a_promotion_is_claimed_with_its_lower_rungs_weights(client: TestClient) -> None:
    lower, promoted = rung_zero_then_promotion(client, {"keep": "all"})
    assert promoted["budget"] == 3 and promoted["candidate"]["meta"]["promoted_from"] == 1
    best = lower_task_of_value(lower, 0.9)
    assert promoted["candidate"]["architecture"] == best["candidate"]["architecture"]
    warm = promoted["warm_start"]
    assert warm["task_id"] == best["id"] and warm["name"] == "weights.pt"
    assert warm["sha256"] == sha(b"w0.9") and warm["kind"] == "weights"


def test_the_promotions_lease_reads_exactly_its_warm_start(
    make_client: Callable[..., TestClient], tmp_path: Path
) -> None:
    client = make_client(
        artifacts_url=f"file://{tmp_path / 'artifacts'}",
        admin_token="admin-secret-0001",
        worker_token="worker-secret-0001",
    )
    admin = {"Authorization": "Bearer admin-secret-0001"}
    worker = {"Authorization": "Bearer worker-secret-0001"}
    body = spec(optimizer=ASHA, parallelism=1, budget={"max_evaluations": 4})
    assert client.post("/v1/experiments", json=body, headers=admin).status_code == 201
    me = client.post("/v1/workers", json={"name": "me"}, headers=worker).json()
    mine = {**worker, "X-MorphML-Worker-Credential": me["credential"]}

    def claimed() -> dict[str, Any]:
        body = {"worker_id": me["id"], "wait_seconds": 0}
        task = client.post("/v1/tasks/claim", json=body, headers=mine).json()
        return {**task, "worker_headers": mine}

    lower = {}
    for value in SCORES:
        task = claimed()
        assert put(client, task, "weights.pt", f"w{value}".encode()).status_code == 201
        assert put(client, task, "notes.txt", b"n", kind="file").status_code == 201
        body = {"lease_token": task["lease_token"], "metrics": {"val_accuracy": value}}
        client.post(f"/v1/tasks/{task['id']}/complete", json=body, headers=mine)
        lower[value] = task["id"]
    promoted = claimed()
    lease = {**mine, LEASE_TOKEN_HEADER: promoted["lease_token"]}
    path = f"/v1/tasks/{lower[0.9]}/artifacts/weights.pt"
    assert client.get(path, headers=lease).content == b"w0.9"
    refused = [
        f"/v1/tasks/{lower[0.5]}/artifacts/weights.pt",  # another architecture's weights
        f"/v1/tasks/{lower[0.9]}/artifacts/notes.txt",  # not its weights
    ]
    assert [client.get(p, headers=lease).status_code for p in refused] == [409, 409]
    assert client.get(path, headers={**lease, LEASE_TOKEN_HEADER: "x" * 32}).status_code == 409
    thief = client.post("/v1/workers", json={"name": "thief"}, headers=worker).json()
    theirs = {**lease, "X-MorphML-Worker-Credential": thief["credential"]}
    assert client.get(path, headers=theirs).status_code == 403
    body = {"lease_token": promoted["lease_token"], "metrics": {"val_accuracy": 0.95}}
    client.post(f"/v1/tasks/{promoted['id']}/complete", json=body, headers=mine)
    assert client.get(path, headers=lease).status_code == 409  # its lease ended: the rule too


def test_the_keep_policy_spares_weights_a_promotion_needs_until_it_finishes(
    client: TestClient,
) -> None:
    # The best comes last: its completion's refill creates the promotion before the keep
    # policy (keep none) runs.
    lower, promoted = rung_zero_then_promotion(client, {"keep": "none"}, (0.5, 0.7, 0.9))
    best = lower_task_of_value(lower, 0.9)
    assert promoted["warm_start"]["task_id"] == best["id"]

    def kept() -> set[int]:
        listed = client.get(f"/v1/experiments/{promoted['experiment_id']}/artifacts").json()
        return {a["task_id"] for a in listed["data"] if a["kind"] == "weights"}

    _eventually(lambda: kept() == {best["id"]})  # spared; the two others dropped
    assert put(client, promoted, "weights.pt", b"w-top").status_code == 201
    complete(client, promoted, 0.99)  # finished: it no longer needs them
    _eventually(lambda: kept() == set())


def test_weights_dropped_before_the_promotion_was_decided_mean_a_start_from_scratch(
    client: TestClient,
) -> None:
    # The best comes first: dropped (keep none) before rung 0 held enough to promote it.
    _, promoted = rung_zero_then_promotion(client, {"keep": "none"}, (0.9, 0.5, 0.7))
    assert promoted["candidate"]["meta"]["promoted_from"] == 1
    assert promoted["warm_start"] is None


def lower_task_of_value(lower: dict[int, dict[str, Any]], value: float) -> dict[str, Any]:
    return next(t for t in lower.values() if t["value"] == value)


def _eventually(check: Callable[[], bool], seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)
