"""/metrics for autoscalers, on SQLite and on Postgres: pending tasks by resource class, running
tasks, idle slots of online workers, and the oldest pending task's age."""

from __future__ import annotations

import re
import time
from typing import Any

from starlette.testclient import TestClient

from server.queue_metrics import resource_class
from tests.server.support import spec, worker_body


def _register(client: TestClient, slots: int, **kwargs: Any) -> int:
    body = worker_body(**kwargs)
    body["resources"]["slots"] = slots
    response = client.post("/v1/workers", json=body)
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


def _claim(client: TestClient, worker_id: int) -> dict[str, Any]:
    response = client.post("/v1/tasks/claim", json={"worker_id": worker_id, "wait_seconds": 0})
    assert response.status_code == 200, response.text
    return dict(response.json())


def _create(client: TestClient, **overrides: Any) -> int:
    response = client.post("/v1/experiments", json=spec(**overrides))
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


def _samples(client: TestClient) -> dict[str, float]:
    """`name{labels}` -> value, for the queue's metric families."""
    text = client.get("/metrics").text
    found = re.findall(r"^(morphml_(?:pending|running|idle|worker|oldest)\S*) (\S+)$", text, re.M)
    return {name: float(value) for name, value in found}


def test_resource_class_names_labels_in_one_order() -> None:
    assert resource_class(2, {"zone": "a", "gpu": "h100"}) == ("2", "gpu=h100,zone=a")
    assert resource_class(0, None) == ("0", "")


def test_an_empty_queue_reports_zeros(client: TestClient) -> None:
    samples = _samples(client)
    assert samples["morphml_idle_slots"] == 0
    assert samples["morphml_oldest_pending_task_age_seconds"] == 0
    assert not any(name.startswith("morphml_pending_tasks{") for name in samples)


def test_pending_running_and_idle_slots_by_resource_class(client: TestClient) -> None:
    _create(client, parallelism=3, budget={"max_evaluations": 10, "max_seconds": None})
    gpu_class = {"gpus": 1, "gpu_memory_mb": 0, "labels": {"zone": "b"}}
    _create(client, parallelism=2, resources=gpu_class)
    paused = _create(client, parallelism=4)
    assert client.post(f"/v1/experiments/{paused}/pause").status_code == 200
    cpu_worker = _register(client, slots=4, name="cpu")
    _register(client, slots=2, name="gpu", gpus=1, labels={"zone": "b"})
    _claim(client, cpu_worker)
    time.sleep(0.3)  # an age the database clock can see

    samples = _samples(client)
    # The paused experiment's 4 tasks wait for no worker: not counted as pending.
    assert samples['morphml_pending_tasks{gpus="0",labels=""}'] == 2
    assert samples['morphml_pending_tasks{gpus="1",labels="zone=b"}'] == 2
    assert samples['morphml_running_tasks{gpus="0",labels=""}'] == 1
    assert samples["morphml_worker_slots"] == 6
    assert samples["morphml_idle_slots"] == 5
    assert 0.2 < samples["morphml_oldest_pending_task_age_seconds"] < 60


def test_offline_workers_offer_no_idle_slots(make_client: Any) -> None:
    client = make_client(worker_offline_seconds=0.3)
    _register(client, slots=3)
    assert _samples(client)["morphml_idle_slots"] == 3
    deadline = time.monotonic() + 10
    while _samples(client)["morphml_idle_slots"] and time.monotonic() < deadline:
        time.sleep(0.1)
    samples = _samples(client)
    assert samples["morphml_idle_slots"] == 0 and samples["morphml_worker_slots"] == 0
