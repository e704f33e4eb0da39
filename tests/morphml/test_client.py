"""The admin client against a scripted server: answers parsed into wire models, pages, errors."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from morphml import Layer, SearchSpace
from morphml.client import APIError, Client, Experiment
from morphml.wire import BudgetSpec, ExperimentPublic, TaskPublic

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def experiment_json(experiment_id: int = 1, **overrides: Any) -> dict[str, Any]:
    experiment = ExperimentPublic(
        id=experiment_id, name="e", status="running", priority=0, parallelism=2,
        lease_seconds=60, max_attempts=3, budget=BudgetSpec(max_evaluations=4), spec={},
        tasks_created=0, counts={"completed": 1}, best=None, error=None, created_at=NOW,
        started_at=NOW, finished_at=None,
    )  # fmt: skip
    return {**experiment.model_dump(mode="json"), **overrides}


def task_json(task_id: int) -> dict[str, Any]:
    task = TaskPublic(
        id=task_id, experiment_id=1, state="completed", candidate={}, candidate_key="h@None",
        budget=None, attempt=1, max_attempts=3, worker_id=2, progress=1.0, step=2,
        metrics={"val_accuracy": 0.5}, intermediate={}, error=None, lease_expires_at=None,
        created_at=NOW, claimed_at=NOW, finished_at=NOW,
    )  # fmt: skip
    return task.model_dump(mode="json")


def client_for(handler: Callable[[httpx.Request], httpx.Response]) -> Client:
    http = httpx.Client(transport=httpx.MockTransport(handler), base_url="http://server")
    return Client("http://server", "secret", http=http)


def test_an_answer_becomes_its_wire_model() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=experiment_json(5))

    experiment = client_for(handler).experiment(5)
    assert isinstance(experiment, ExperimentPublic) and Experiment is ExperimentPublic
    assert experiment.id == 5 and experiment.created_at == NOW and experiment.done == 1
    assert seen[0].url.path == "/v1/experiments/5"
    assert seen[0].headers["authorization"] == "Bearer secret"


def test_lists_follow_the_pages_until_the_count() -> None:
    offsets: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        offset = int(request.url.params["offset"])
        offsets.append(offset)
        page = [task_json(i) for i in range(offset + 1, min(offset + 2, 3) + 1)]
        return httpx.Response(200, json={"data": page, "count": 3})

    tasks = client_for(handler).tasks(1, state="completed")
    assert [t.id for t in tasks] == [1, 2, 3] and offsets == [0, 2]
    assert tasks[0].metrics == {"val_accuracy": 0.5}


def test_an_answer_off_the_contract_is_an_api_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=experiment_json(id="../1"))

    with pytest.raises(APIError, match=r"unexpected answer \(id: "):
        client_for(handler).experiment(1)


def test_an_answer_that_is_not_json_is_an_api_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text="<html>proxy error</html>")

    with pytest.raises(APIError, match="not JSON"):
        client_for(handler).workers()


def test_a_422_names_the_fields_and_keeps_the_status() -> None:
    detail = [{"loc": ["body", "evaluator", "kind"], "msg": "Field required"}]

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(422, json={"detail": detail})

    with pytest.raises(APIError, match=r"evaluator\.kind: Field required") as caught:
        client_for(handler).create_experiment({"name": "x"})
    assert caught.value.status_code == 422 and caught.value.detail == detail


def test_a_space_object_is_sent_as_its_dict() -> None:
    bodies: list[dict[str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        bodies.append(json.loads(request.content))
        return httpx.Response(201, json=experiment_json())

    space = SearchSpace("s").add_layers(Layer.input(shape=(1, 8, 8)), Layer.output(units=10))
    client_for(handler).create_experiment({"name": "x", "search_space": space})
    assert bodies[0]["search_space"] == space.to_dict()
