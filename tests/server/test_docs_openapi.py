"""The OpenAPI document describes the API: every operation, its errors, working request examples,
and a real schema for the search-space JSON, which stays in step with what the library accepts.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
from pydantic import TypeAdapter
from starlette.testclient import TestClient

from morphml.cli.demo import mnist_spec, tabular_spec
from morphml.ops import ACTIVATIONS, GRAPH_OPS, OPS
from morphml.space import space_from_dict
from morphml.space.cell_ops import BUILTIN_OPS
from morphml.wire import (
    NB201_CELL_SPACE,
    SMALL_SEQUENTIAL_SPACE,
    CellSpaceSpec,
    SequentialSpaceSpec,
    SpaceElement,
)
from server.api import examples
from server.openapi import openapi_document
from tests.morphml.spaces import all_spaces
from tests.server.support import tiny_space

DOCUMENT = openapi_document()
OPERATIONS = [
    (method, path, operation)
    for path, methods in DOCUMENT["paths"].items()
    for method, operation in methods.items()
]
SPACE = TypeAdapter(SequentialSpaceSpec | CellSpaceSpec)

# The REST contract as it was before it was documented: documenting it changes none of this.
CONTRACT = {
    ("get", "/healthz"): "health-healthz",
    ("get", "/readyz"): "health-readyz",
    ("get", "/metrics"): "health-metrics",
    ("post", "/v1/experiments"): "experiments-create",
    ("get", "/v1/experiments"): "experiments-list",
    ("get", "/v1/experiments/{experiment_id}"): "experiments-get",
    ("post", "/v1/experiments/{experiment_id}/pause"): "experiments-pause",
    ("post", "/v1/experiments/{experiment_id}/resume"): "experiments-resume",
    ("post", "/v1/experiments/{experiment_id}/cancel"): "experiments-cancel",
    ("get", "/v1/experiments/{experiment_id}/tasks"): "experiments-tasks",
    ("get", "/v1/experiments/{experiment_id}/best"): "experiments-best",
    ("get", "/v1/experiments/{experiment_id}/pareto"): "experiments-pareto",
    ("post", "/v1/workers"): "workers-register",
    ("get", "/v1/workers"): "workers-list",
    ("post", "/v1/tasks/claim"): "tasks-claim",
    ("post", "/v1/tasks/{task_id}/heartbeat"): "tasks-heartbeat",
    ("post", "/v1/tasks/{task_id}/complete"): "tasks-complete",
    ("post", "/v1/tasks/{task_id}/fail"): "tasks-fail",
    # Issue 14, additions: batched claims and claim-on-complete.
    ("post", "/v1/tasks/claim-batch"): "tasks-claim_batch",
    ("post", "/v1/tasks/{task_id}/complete-and-claim"): "tasks-complete_and_claim",
    # Issue 15, additions: task artifacts.
    ("put", "/v1/tasks/{task_id}/artifacts/{name}"): "artifacts-upload",
    ("get", "/v1/tasks/{task_id}/artifacts/{name}"): "artifacts-download",
    ("delete", "/v1/tasks/{task_id}/artifacts/{name}"): "artifacts-delete",
    ("get", "/v1/tasks/{task_id}/artifacts"): "artifacts-list_task_artifacts",
    ("get", "/v1/experiments/{experiment_id}/artifacts"): "artifacts-list_experiment_artifacts",
}
ADMIN = {operation_id for operation_id in CONTRACT.values() if operation_id.startswith("exp")}
ADMIN |= {"workers-list", "artifacts-delete", "artifacts-list_task_artifacts"}
ADMIN.add("artifacts-list_experiment_artifacts")
WORKER = {"workers-register", "tasks-claim", "tasks-heartbeat", "tasks-complete", "tasks-fail"}
WORKER |= {"tasks-claim_batch", "tasks-complete_and_claim"}


def test_paths_and_operation_ids_are_the_contract() -> None:
    found = {(method, path): op["operationId"] for method, path, op in OPERATIONS}
    assert found == CONTRACT


@pytest.mark.parametrize(("method", "path", "operation"), OPERATIONS)
def test_every_operation_has_a_summary_and_a_description(
    method: str, path: str, operation: dict[str, Any]
) -> None:
    name = operation["operationId"].partition("-")[2]
    assert operation.get("summary") and operation["summary"].lower() != name, path
    assert len(operation.get("description", "")) >= 40, path


@pytest.mark.parametrize(("method", "path", "operation"), OPERATIONS)
def test_every_error_status_is_described(method: str, path: str, operation: dict[str, Any]) -> None:
    responses = operation["responses"]
    operation_id = operation["operationId"]
    if operation_id in ADMIN:
        assert {"401", "403"} <= set(responses), path
        assert "Admin token" in operation["description"], path
    if operation_id in WORKER:
        assert "401" in responses and "403" not in responses, path
        assert "Worker or admin token" in operation["description"], path
    if "requestBody" in operation:
        assert "413" in responses, path
    if "{" in path:
        assert "404" in responses, path
    for status, response in responses.items():
        assert response["description"] not in ("Successful Response", "Validation Error"), (
            path,
            status,
        )
        if status.startswith(("4", "5")):
            content = response["content"]["application/json"]
            assert content["schema"]["$ref"], (path, status)
            if status != "422":
                assert content["example"]["detail"], (path, status)
    if "422" in responses:  # still FastAPI's own schema, only described
        schema = responses["422"]["content"]["application/json"]["schema"]
        assert schema == {"$ref": "#/components/schemas/HTTPValidationError"}


@pytest.mark.parametrize(("method", "path", "operation"), OPERATIONS)
def test_every_request_body_has_examples(method: str, path: str, operation: dict[str, Any]) -> None:
    content = operation.get("requestBody", {}).get("content", {})
    if "application/json" in content:  # an artifact upload's body is raw bytes
        assert content["application/json"]["examples"], path


def test_the_search_space_has_a_documented_schema() -> None:
    schemas = DOCUMENT["components"]["schemas"]
    field = schemas["ExperimentCreate"]["properties"]["search_space"]
    assert field["type"] == "object" and field["additionalProperties"] is True  # as before
    refs = {option["$ref"].rsplit("/", 1)[1] for option in field["anyOf"]}
    assert refs == {"SequentialSpaceSpec", "CellSpaceSpec"}
    assert field["examples"] == [SMALL_SEQUENTIAL_SPACE, NB201_CELL_SPACE]
    sequential = schemas["SequentialSpaceSpec"]["properties"]
    assert set(sequential) == {"type", "name", "layers"}
    assert set(sequential["layers"]["items"]["discriminator"]["mapping"]) == set(
        OPS
    ) - GRAPH_OPS | {
        "repeat",
        "residual",
    }
    cell = schemas["CellSpaceSpec"]["properties"]
    assert set(cell) == {
        "type",
        "name",
        "num_nodes",
        "ops",
        "input_shape",
        "stem_channels",
        "cells_per_stage",
        "num_classes",
        "inputs_per_node",
        "cell_inputs",
        "node_aggregation",
        "cell_output",
        "custom_ops",
    }
    built_in, custom = cell["ops"]["items"]["anyOf"]
    assert built_in["enum"] == list(BUILTIN_OPS) and custom == {"type": "string"}


def _layer_models() -> dict[str, type[Any]]:
    """Each documented layer type and the model that documents it."""
    union = SpaceElement.__origin__  # type: ignore[attr-defined]
    models: dict[str, type[Any]] = {}
    for model in union.__args__:
        for layer_type in model.model_fields["type"].annotation.__args__:
            models[layer_type] = model
    return models


def test_documented_layers_match_the_library() -> None:
    models = _layer_models()
    assert set(models) == set(OPS) - GRAPH_OPS | {"repeat", "residual"}
    for op, spec in OPS.items():
        if op in models:
            documented = set(models[op].model_fields) - {"type", "optional"}
            assert documented == set(spec.params), op
    activation = models["activation"].model_fields["fn"].annotation
    assert set(activation.__args__[0].__args__) == set(ACTIVATIONS)


def _corpus() -> dict[str, dict[str, Any]]:
    spaces = {name: space.to_dict() for name, space in all_spaces().items()}
    spaces["tests.server.tiny_space"] = tiny_space()
    spaces["demo.mnist"] = mnist_spec(30)["search_space"]
    spaces["demo.tabular"] = tabular_spec(200)["search_space"]
    spaces["examples.cnn"] = examples.CNN_SPACE
    spaces["wire.small"] = SMALL_SEQUENTIAL_SPACE
    spaces["wire.cell"] = NB201_CELL_SPACE
    spaces["no type, plain lists, a null stride"] = {
        "name": "edge-cases",
        "layers": [
            {"type": "input", "shape": [3, 8, 8]},
            {"type": "conv2d", "filters": [4, 8], "bias": {"choice": [True, False]}},
            {"type": "maxpool", "stride": None, "padding": 0, "optional": True},
            {"type": "global_maxpool"},
            {"type": "output", "units": 2},
        ],
    }
    spaces["a cell space of defaults"] = {"type": "cell"}
    return spaces


@pytest.mark.parametrize(("name", "space"), list(_corpus().items()))
def test_what_the_library_builds_fits_the_documented_schema(
    name: str, space: dict[str, Any]
) -> None:
    space_from_dict(copy.deepcopy(space))  # the server accepts it ...
    SPACE.validate_python(space)  # ... and the documented schema describes it


def _substitute(value: Any, token: str) -> Any:
    if isinstance(value, dict):
        return {
            k: token if v == examples.TOKEN else _substitute(v, token) for k, v in value.items()
        }
    return value


def test_every_request_example_is_accepted(make_client: Callable[..., TestClient]) -> None:
    client = make_client()
    for name, example in examples.EXPERIMENT.items():
        answer = client.post("/v1/experiments", json=example["value"])
        assert answer.status_code == 201, (name, answer.text)
    worker_ids = []
    for name, example in examples.WORKER.items():
        answer = client.post("/v1/workers", json=example["value"])
        assert answer.status_code == 201, (name, answer.text)
        worker_ids.append(answer.json()["id"])
    claimed = []
    for name, example in [*examples.CLAIM.items()] * 3:
        body = {**example["value"], "worker_id": worker_ids[0], "wait_seconds": 0}
        answer = client.post("/v1/tasks/claim", json=body)
        assert answer.status_code == 200, (name, answer.text)
        claimed.append(answer.json())
    task = claimed.pop()
    for name, example in [*examples.HEARTBEAT.items(), *examples.COMPLETE.items()]:
        route = "heartbeat" if name in examples.HEARTBEAT else "complete"
        body = _substitute(example["value"], task["lease_token"])
        answer = client.post(f"/v1/tasks/{task['id']}/{route}", json=body)
        assert answer.status_code == 200, (name, answer.text)
    for name, example in examples.CLAIM_BATCH.items():
        body = {**example["value"], "worker_id": worker_ids[0], "wait_seconds": 0}
        answer = client.post("/v1/tasks/claim-batch", json=body)
        assert answer.status_code == 200, (name, answer.text)
        assert 1 <= len(answer.json()["data"]) <= body["max_tasks"]
    for name, example in examples.COMPLETE_AND_CLAIM.items():
        task = claimed.pop()
        body = _substitute(example["value"], task["lease_token"])
        body["claim"]["worker_id"] = worker_ids[0]
        answer = client.post(f"/v1/tasks/{task['id']}/complete-and-claim", json=body)
        assert answer.status_code == 200, (name, answer.text)
        assert answer.json()["task"]["state"] == "completed"
    for name, example in examples.FAIL.items():
        task = claimed.pop()
        body = _substitute(example["value"], task["lease_token"])
        answer = client.post(f"/v1/tasks/{task['id']}/fail", json=body)
        assert answer.status_code == 200, (name, answer.text)
        assert answer.json()["state"] == ("pending" if body["retryable"] else "failed")
