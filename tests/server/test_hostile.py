"""Hostile and malformed input, on SQLite and Postgres: every one is a 4xx, nothing is stored,
and nothing stored can break a later answer."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest
from starlette.testclient import TestClient

from tests.server.support import spec, worker_body


def _raw_post(client: TestClient, path: str, text: str) -> Any:
    return client.post(path, content=text, headers={"content-type": "application/json"})


def _running_task(client: TestClient) -> dict[str, Any]:
    assert client.post("/v1/experiments", json=spec()).status_code == 201
    worker_id = client.post("/v1/workers", json=worker_body()).json()["id"]
    claimed = client.post("/v1/tasks/claim", json={"worker_id": worker_id, "wait_seconds": 0})
    assert claimed.status_code == 200
    return dict(claimed.json())


@pytest.mark.parametrize(
    "where",
    [
        lambda body, bad: body["evaluator"]["params"].update(note=bad),
        lambda body, bad: body["optimizer"]["params"].update(note=bad),
        lambda body, bad: body.update(name=bad),
        lambda body, bad: body["search_space"].update(name=bad),
    ],
)
def test_a_lone_surrogate_anywhere_in_a_spec_is_a_422_and_nothing_is_stored(
    client: TestClient, where: Any
) -> None:
    body = spec()
    where(body, "PLACEHOLDER")
    text = json.dumps(body).replace('"PLACEHOLDER"', '"bad \\ud800 text"')
    response = _raw_post(client, "/v1/experiments", text)
    assert response.status_code == 422, response.text
    listed = client.get("/v1/experiments")
    assert listed.status_code == 200 and listed.json()["count"] == 0


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_in_free_form_json_are_a_422(client: TestClient, token: str) -> None:
    body = spec()
    body["evaluator"]["params"]["lr"] = "PLACEHOLDER"
    text = json.dumps(body).replace('"PLACEHOLDER"', token)
    response = _raw_post(client, "/v1/experiments", text)
    assert response.status_code == 422, response.text
    assert "NaN or Infinity" in response.text


def test_deeply_nested_params_are_a_422(client: TestClient) -> None:
    body = spec()
    body["evaluator"]["params"]["deep"] = "PLACEHOLDER"
    text = json.dumps(body).replace('"PLACEHOLDER"', "[" * 500 + "]" * 500)
    response = _raw_post(client, "/v1/experiments", text)
    assert response.status_code == 422, response.text
    assert "nested deeper" in response.text


@pytest.mark.parametrize("route", ["complete", "fail", "heartbeat"])
def test_a_non_ascii_lease_token_is_a_422_not_a_500(client: TestClient, route: str) -> None:
    task = _running_task(client)
    body: dict[str, Any] = {"lease_token": "tökén"}
    if route == "complete":
        body["metrics"] = {"val_accuracy": 0.5}
    response = client.post(f"/v1/tasks/{task['id']}/{route}", json=body)
    assert response.status_code == 422, response.text


def test_a_forged_huge_objective_value_is_a_422_and_not_the_best(client: TestClient) -> None:
    task = _running_task(client)
    forged = {"lease_token": task["lease_token"], "metrics": {"val_accuracy": 1e308}}
    response = client.post(f"/v1/tasks/{task['id']}/complete", json=forged)
    assert response.status_code == 422, response.text
    experiment = client.get(f"/v1/experiments/{task['experiment_id']}").json()
    assert experiment["best"] is None and experiment["counts"]["completed"] == 0


def test_a_heartbeat_with_thousands_of_metrics_is_a_422(client: TestClient) -> None:
    task = _running_task(client)
    metrics = {f"m{i}": 0.5 for i in range(8000)}
    body = {"lease_token": task["lease_token"], "step": 1, "metrics": metrics}
    response = client.post(f"/v1/tasks/{task['id']}/heartbeat", json=body)
    assert response.status_code == 422, response.text


def _layers(*middle: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "sequential",
        "name": "hostile",
        "layers": [
            {"type": "input", "shape": [1, 8, 8]},
            *middle,
            {"type": "flatten"},
            {"type": "output", "units": 10},
        ],
    }


def _repeat(depth: Any, *layers: dict[str, Any]) -> dict[str, Any]:
    return {"type": "repeat", "depth": depth, "layers": list(layers)}


RELU = {"type": "activation", "fn": "relu"}
CELL = {"type": "cell", "input_shape": [3, 32, 32], "num_classes": 10}


@pytest.mark.parametrize(
    ("space", "limit"),
    [
        ({**CELL, "num_nodes": 100_000}, "max_cell_nodes"),
        ({**CELL, "cells_per_stage": 1_000_000}, "max_cells_per_stage"),
        (_layers(_repeat({"int": [0, 1_000_000_000]}, RELU)), "max_repeat_depth"),
        (_layers(_repeat([1, 100], _repeat([1, 100], RELU))), "max_nodes"),
        (_layers(*[RELU] * 6_000), "max_nodes"),
        (_layers({"type": "flatten"}, *[{"type": "dense", "units": [8, 16]}] * 6_000), "max_nodes"),
    ],
)
def test_a_space_that_would_exhaust_the_host_is_a_422_naming_the_limit(
    client: TestClient, space: dict[str, Any], limit: str
) -> None:
    response = client.post("/v1/experiments", json=spec(search_space=space))
    assert response.status_code == 422, response.text[:300]
    assert limit in response.json()["detail"]
    assert client.get("/v1/experiments").json()["count"] == 0


def test_parallelism_is_capped_by_the_server(client: TestClient) -> None:
    response = client.post("/v1/experiments", json=spec(parallelism=100_000))
    assert response.status_code == 422
    assert "MORPHML_MAX_PARALLELISM" in response.json()["detail"]


def test_a_slow_refill_never_stalls_other_experiments_heartbeats(client: TestClient) -> None:
    """A space of one 4,000-layer architecture: asking for 8 distinct candidates draws for
    seconds. That work holds no lock, so another experiment's heartbeat answers meanwhile."""
    task = _running_task(client)
    huge = _layers(*[RELU] * 4_000)
    created: dict[str, Any] = {}

    def create_slow() -> None:
        created["response"] = client.post(
            "/v1/experiments", json=spec(search_space=huge, parallelism=8)
        )

    slow = threading.Thread(target=create_slow)
    slow.start()
    try:
        time.sleep(1.0)  # the create is asking its optimizer by now
        beat = client.post(
            f"/v1/tasks/{task['id']}/heartbeat", json={"lease_token": task["lease_token"]}
        )
        assert beat.status_code == 200 and beat.json()["action"] == "continue"
        assert slow.is_alive(), "the slow create finished first: nothing was shown"
    finally:
        slow.join(60)
    assert created["response"].status_code == 201
    assert created["response"].json()["tasks_created"] == 1  # the space has one architecture


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"dataset": "digits", "epoch": 2}, "evaluator.params.epoch"),
        ({"dataset": "digit"}, "evaluator.params.dataset"),
        ({"dataset": "mnist"}, "evaluator.params.dataset"),  # the test space takes 1x8x8
    ],
)
def test_evaluator_params_a_worker_could_not_run_are_a_422_naming_the_field(
    client: TestClient, params: dict[str, Any], field: str
) -> None:
    body = spec(evaluator={"kind": "train", "params": params})
    response = client.post("/v1/experiments", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["detail"].startswith(field)
    assert client.get("/v1/experiments").json()["count"] == 0
