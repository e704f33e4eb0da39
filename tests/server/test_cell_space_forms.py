"""The server takes the new cell forms in an experiment spec: a DARTS-style space runs through
claims and completions, a space of a user's own ops is validated without the user's code, and a
malformed form is a 422 naming its field."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.testclient import TestClient

from morphml import Architecture, CellSpace, space_from_dict
from morphml.space import DARTS_OPS
from tests.server.support import spec, worker_body

TINY = {"input_shape": [1, 8, 8], "stem_channels": 4, "cells_per_stage": 1, "num_classes": 10}
DARTS: dict[str, Any] = {
    "type": "cell",
    "name": "darts-tiny",
    "num_nodes": 6,
    "cell_inputs": 2,
    "inputs_per_node": 2,
    "ops": list(DARTS_OPS),
    "cell_output": "concat",
    **TINY,
}
GNN: dict[str, Any] = {
    "type": "cell",
    "name": "gnn",
    "num_nodes": 5,
    "inputs_per_node": 1,
    "ops": ["gcn", "gat", "sage", "skip_connect"],
    "custom_ops": ["gcn", "gat", "sage"],
    **TINY,
}


def test_a_darts_space_runs_through_the_api(client: TestClient) -> None:
    body = spec(
        search_space=DARTS,
        optimizer={
            "name": "regularized_evolution",
            "params": {"population_size": 3, "sample_size": 2},
        },
        budget={"max_evaluations": 6},
    )
    response = client.post("/v1/experiments", json=body)
    assert response.status_code == 201, response.text
    worker = client.post("/v1/workers", json=worker_body()).json()["id"]
    space = space_from_dict(DARTS)
    hashes = set()
    for step in range(6):
        claimed = client.post("/v1/tasks/claim", json={"worker_id": worker, "wait_seconds": 0})
        assert claimed.status_code == 200, claimed.text
        task = claimed.json()
        architecture = Architecture.from_dict(task["candidate"]["architecture"])
        assert space.contains(architecture) and "2.in0" in architecture.config
        hashes.add(architecture.hash)
        done = client.post(
            f"/v1/tasks/{task['id']}/complete",
            json={"lease_token": task["lease_token"], "metrics": {"val_accuracy": step / 10}},
        )
        assert done.status_code == 200, done.text
    assert len(hashes) == 6


def test_a_space_of_user_ops_is_validated_without_their_code(client: TestClient) -> None:
    evaluator = {"kind": "python", "params": {"function": "my_gnn.search:evaluate"}}
    response = client.post("/v1/experiments", json=spec(search_space=GNN, evaluator=evaluator))
    assert response.status_code == 201, response.text
    stored = client.get(f"/v1/experiments/{response.json()['id']}").json()
    assert CellSpace.from_dict(stored["spec"]["search_space"]) == space_from_dict(GNN)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"ops": ["gcn", "gin"]}, "ops"),
        ({"custom_ops": ["gcn", "skip_connect"]}, "custom_ops"),
        ({"inputs_per_node": 2}, "inputs_per_node"),
        ({"cell_output": "mean"}, "cell_output"),
    ],
)
def test_a_malformed_form_is_a_422_naming_the_field(
    client: TestClient, change: dict[str, Any], field: str
) -> None:
    response = client.post("/v1/experiments", json=spec(search_space={**GNN, **change}))
    assert response.status_code == 422
    assert field in response.json()["detail"]


def test_tabular_refuses_a_darts_space(client: TestClient) -> None:
    evaluator = {"kind": "tabular", "params": {}}
    response = client.post("/v1/experiments", json=spec(search_space=DARTS, evaluator=evaluator))
    assert response.status_code == 422
    assert "tabular needs a 4-node NAS-Bench-201 cell space" in response.json()["detail"]
