"""A `weight_sharing` experiment through the REST API, on SQLite and on Postgres, with the worker
played by hand: one supernet task, its derived cells as final tasks, a final task as the best.
Nothing server-side is special to it: the spec validates like any other, and the experiment
completes when the optimizer has nothing left and nothing is in flight."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.testclient import TestClient

from morphml import CellSpace
from morphml.optimizers.derived import derived_configs, derived_metrics
from tests.server.support import spec, worker_body

SPACE = CellSpace(
    name="tiny-cell",
    num_nodes=3,
    ops=["skip_connect", "nor_conv_3x3", "avg_pool_3x3"],
    input_shape=[1, 8, 8],
    stem_channels=4,
    cells_per_stage=1,
)


class Cell:
    def __init__(self, seed: int, score: float) -> None:
        self.config, self.score = SPACE.sample(seed).config, score


def weight_sharing_spec(**params: Any) -> dict[str, Any]:
    return spec(
        search_space=SPACE.to_dict(),
        optimizer={"name": "weight_sharing", "params": {"top_k": 2, "final_budget": 1, **params}},
        evaluator={"kind": "train", "params": {"dataset": "digits", "epochs": 3}},
        budget={"max_evaluations": 10},
        parallelism=4,
    )


def create(client: TestClient, **params: Any) -> int:
    response = client.post("/v1/experiments", json=weight_sharing_spec(**params))
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


def register(client: TestClient) -> int:
    response = client.post("/v1/workers", json=worker_body())
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


def claim(client: TestClient, worker_id: int) -> dict[str, Any] | None:
    response = client.post("/v1/tasks/claim", json={"worker_id": worker_id, "wait_seconds": 0})
    assert response.status_code in (200, 204), response.text
    return response.json() if response.status_code == 200 else None


def complete(client: TestClient, task: dict[str, Any], metrics: dict[str, float]) -> None:
    body = {"lease_token": task["lease_token"], "metrics": metrics}
    response = client.post(f"/v1/tasks/{task['id']}/complete", json=body)
    assert response.status_code == 200, response.text


def fail(client: TestClient, task: dict[str, Any]) -> None:
    body = {"lease_token": task["lease_token"], "error": "supernet diverged", "retryable": False}
    assert client.post(f"/v1/tasks/{task['id']}/fail", json=body).status_code == 200


def experiment(client: TestClient, experiment_id: int) -> dict[str, Any]:
    return dict(client.get(f"/v1/experiments/{experiment_id}").json())


def test_one_supernet_task_then_its_cells_trained_from_scratch(client: TestClient) -> None:
    experiment_id = create(client, search={"epochs": 2})
    assert experiment(client, experiment_id)["tasks_created"] == 1  # parallelism 4, one task
    worker_id = register(client)
    supernet = claim(client, worker_id)
    assert supernet is not None and claim(client, worker_id) is None
    meta = supernet["candidate"]["meta"]
    assert meta["phase"] == "supernet" and meta["space"] == SPACE.to_dict()
    assert meta["search"] == {"epochs": 2, "method": "darts", "top_k": 2}
    assert supernet["budget"] == 0.0 and supernet["evaluator"]["kind"] == "train"
    cells = [Cell(1, 0.6), Cell(2, 0.5)]
    complete(client, supernet, {"supernet_val_accuracy": 0.6, **derived_metrics(SPACE, cells)})
    assert experiment(client, experiment_id)["best"] is None  # the placeholder is not ranked
    finals = [claim(client, worker_id) for _ in range(3)]
    assert finals[2] is None
    decoded = derived_configs(SPACE, derived_metrics(SPACE, cells))
    assert [f["candidate"]["architecture"]["config"] for f in finals if f] == [
        d.config for d in decoded
    ]
    assert [(f["budget"], f["candidate"]["meta"]["rank"]) for f in finals if f] == [
        (1.0, 1),
        (1.0, 2),
    ]
    for final, accuracy in zip(finals, (0.7, 0.8), strict=False):
        assert final is not None
        complete(client, final, {"val_accuracy": accuracy})
    done = experiment(client, experiment_id)
    assert done["status"] == "completed" and done["tasks_created"] == 3
    assert done["best"]["value"] == 0.8 and done["best"]["candidate"]["meta"]["rank"] == 2


def test_a_failed_supernet_is_tried_once_more_then_the_experiment_fails(
    client: TestClient,
) -> None:
    experiment_id = create(client)
    worker_id = register(client)
    for _ in range(2):
        task = claim(client, worker_id)
        assert task is not None and task["candidate"]["meta"]["phase"] == "supernet"
        fail(client, task)
    assert claim(client, worker_id) is None
    failed = experiment(client, experiment_id)
    assert failed["status"] == "failed" and failed["tasks_created"] == 2
    assert "supernet diverged" in failed["error"]


def test_a_supernet_result_without_cells_fails_the_experiment_saying_why(
    client: TestClient,
) -> None:
    experiment_id = create(client)
    worker_id = register(client)
    task = claim(client, worker_id)
    assert task is not None
    complete(client, task, {"val_accuracy": 0.9})  # e.g. an evaluator other than train
    failed = experiment(client, experiment_id)
    assert failed["status"] == "failed" and "needs the `train` evaluator" in failed["error"]


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"optimizer": {"name": "weight_sharing", "params": {"top_k": 15}}}, "top_k"),
        ({"optimizer": {"name": "weight_sharing", "params": {"method": "enas"}}}, "method"),
        (
            {"optimizer": {"name": "weight_sharing", "params": {"search": {"top_k": 2}}}},
            "search.top_k",
        ),
        (  # values too are checked at submit, not first on a worker
            {"optimizer": {"name": "weight_sharing", "params": {"search": {"epochs": 0}}}},
            "search.epochs",
        ),
        (
            {"optimizer": {"name": "weight_sharing", "params": {"search": {"lr": "fast"}}}},
            "search.lr",
        ),
        (
            {"search_space": spec()["search_space"], "evaluator": {"kind": "proxy", "params": {}}},
            "search_space: weight_sharing searches a cell space",
        ),
    ],
)
def test_a_bad_weight_sharing_spec_is_422_naming_the_field(
    client: TestClient, overrides: dict[str, Any], field: str
) -> None:
    response = client.post("/v1/experiments", json={**weight_sharing_spec(), **overrides})
    assert response.status_code == 422, response.text
    assert field in str(response.json()["detail"])
