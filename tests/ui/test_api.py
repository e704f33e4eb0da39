"""The dashboard's data endpoints and page routes, in process, on SQLite and Postgres: admin
only, server-side sorting, filtering and paging, bounded charts, hostile input."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest
from starlette.testclient import TestClient

from bench.ui_load import insert_tasks
from server.ui import charts
from tests.server.support import spec

TOKEN = "dashboard-admin-token-0123"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def client(make_client: Callable[..., TestClient]) -> TestClient:
    return make_client(admin_token=TOKEN, worker_token="dashboard-worker-token-0123")


def experiment_with_tasks(client: TestClient, count: int, **overrides: Any) -> int:
    response = client.post("/v1/experiments", json=spec(**overrides), headers=ADMIN)
    assert response.status_code == 201, response.text
    experiment_id: int = response.json()["id"]
    insert_tasks(client.app.state.engine, experiment_id, count)  # type: ignore[attr-defined]
    return experiment_id


def get(client: TestClient, path: str) -> Any:
    response = client.get(path, headers=ADMIN)
    assert response.status_code == 200, response.text
    return response.json()


def test_data_needs_the_admin_token_and_pages_do_not(client: TestClient) -> None:
    assert client.get("/ui/api/experiments").status_code == 401
    worker = {"Authorization": "Bearer dashboard-worker-token-0123"}
    assert client.get("/ui/api/workers", headers=worker).status_code == 403
    listing = get(client, "/ui/api/experiments")
    assert listing["data"] == [] and listing["count"] == 0 and listing["now"]
    page = client.get("/ui/")
    assert page.status_code == 200 and "experiments.js" in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]


def test_the_task_table_sorts_filters_and_pages_in_sql(client: TestClient) -> None:
    experiment_id = experiment_with_tasks(client, 600)
    base = f"/ui/api/experiments/{experiment_id}/tasks"
    everything = get(client, f"{base}?limit=500&sort=id&order=asc")
    assert everything["count"] == 602 and len(everything["data"]) == 500
    ids = [row["id"] for row in everything["data"]]
    assert ids == sorted(ids)
    best = get(client, f"{base}?sort=value&order=desc&limit=20")["data"]
    values = [row["value"] for row in best]
    assert values == sorted(values, reverse=True) and None not in values
    worst_last = get(client, f"{base}?sort=value&order=asc&limit=500&offset=500")["data"]
    assert worst_last[-1]["value"] is None  # unscored tasks last in either order
    failed = get(client, f"{base}?state=failed&limit=500")
    assert failed["count"] == len(failed["data"]) > 0
    assert {row["state"] for row in failed["data"]} == {"failed"}
    assert all(row["error"].startswith("RuntimeError") for row in failed["data"])
    second = get(client, f"{base}?sort=finished&order=desc&offset=50&limit=50")["data"]
    first = get(client, f"{base}?sort=finished&order=desc&offset=0&limit=50")["data"]
    assert not {r["id"] for r in first} & {r["id"] for r in second}


@pytest.mark.parametrize(
    "query",
    ["sort=evil", "order=sideways", "limit=0", "limit=100000", "offset=-1", "state=zombie"],
)
def test_bad_table_queries_get_422(client: TestClient, query: str) -> None:
    experiment_id = experiment_with_tasks(client, 1)
    response = client.get(f"/ui/api/experiments/{experiment_id}/tasks?{query}", headers=ADMIN)
    assert response.status_code == 422, response.text


def test_charts_stay_bounded(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(charts, "MAX_POINTS", 50)
    experiment_id = experiment_with_tasks(client, 400)
    base = f"/ui/api/experiments/{experiment_id}"
    convergence = get(client, f"{base}/convergence")
    assert convergence["total"] > 300
    assert len(convergence["points"]) <= 50 + len(convergence["best"])
    best = [value for _, value, _ in convergence["best"]]
    assert best == sorted(best) and best[-1] == max(v for _, v, _ in convergence["points"])
    importance = get(client, f"{base}/importance")
    names = {variable["name"] for variable in importance["variables"]}
    assert names == {"1.units", "2.fn"}
    assert len(importance["top"]) == charts.TOP_CANDIDATES
    curves = get(client, f"{base}/curves")
    assert curves["tasks"] and all(len(t["steps"]) == 8 for t in curves["tasks"])
    assert len(get(client, f"{base}/failures")["data"]) <= 20


def test_pareto_front_of_two_objectives(client: TestClient) -> None:
    objectives = [
        {"metric": "val_accuracy", "direction": "maximize"},
        {"metric": "num_params", "direction": "minimize"},
    ]
    experiment_id = experiment_with_tasks(client, 300, objectives=objectives)
    answer = get(client, f"/ui/api/experiments/{experiment_id}/pareto")
    front = answer["front"]
    assert front and answer["total"] == len(front) + len(answer["others"])
    for _, accuracy, size in answer["others"]:
        assert any(a >= accuracy and s <= size for _, a, s in front)
    for _, accuracy, size in front:
        others = [p for p in front if p[1:] != [accuracy, size]]
        assert not any(a >= accuracy and s <= size for _, a, s in others)


def test_a_task_shows_graph_events_and_source(client: TestClient) -> None:
    experiment_id = experiment_with_tasks(client, 0)
    tasks = get(client, f"/ui/api/experiments/{experiment_id}/tasks")["data"]
    detail = get(client, f"/ui/api/tasks/{tasks[0]['id']}")
    architecture = detail["architecture"]
    assert architecture["source"].startswith('"""A MorphML architecture')
    assert "class Net(nn.Module)" in architecture["source"]
    assert architecture["nodes"][0]["op"] == "input"
    assert architecture["params"] > 0 and architecture["flops"] > 0
    assert [e["kind"] for e in detail["events"]] == ["created"]


def test_missing_and_hostile_ids(client: TestClient) -> None:
    for path in (
        "/ui/api/experiments/999999",
        "/ui/api/tasks/999999",
        "/ui/api/experiments/999999/tasks",
        "/ui/api/experiments/999999/convergence",
    ):
        response = client.get(path, headers=ADMIN)
        assert response.status_code == 404, path
        assert "not found" in response.json()["detail"]
    for path in ("/ui/api/tasks/0", "/ui/api/tasks/abc", "/ui/experiments/99999999999"):
        assert client.get(path, headers=ADMIN).status_code == 422, path
    for name in ("..%2Fapi.py", "api.py", "page.html", "x.js", "%2e%2e%2fsetup.py"):
        assert client.get(f"/ui/static/{name}").status_code == 404, name
    assert client.get("/ui/static/app.css").headers["content-type"].startswith("text/css")


def test_the_dashboard_never_imports_torch() -> None:
    code = "import sys, server.main, server.ui; print('torch' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert result.stdout.strip() == "False", result.stderr
