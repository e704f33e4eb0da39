"""Artifact endpoints in process, on SQLite and Postgres with the file store: round trip with
sha256, the lease's rules, names, sizes, checksums, the keep policy, checkpoints and resume."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from morphml.wire import LEASE_TOKEN_HEADER, SHA256_HEADER
from tests.server.artifact_support import claimed_task, put, sha, upload_headers

ADMIN, WORKER = "admin-secret-0001", "worker-secret-0001"


@pytest.fixture
def store_dir(tmp_path: Path) -> Path:
    return tmp_path / "artifacts"


@pytest.fixture
def client(make_client: Callable[..., TestClient], store_dir: Path) -> TestClient:
    return make_client(artifacts_url=f"file://{store_dir}", artifact_max_bytes=4 * 1024 * 1024)


def visible_files(root: Path) -> list[str]:
    if not root.exists():
        return []
    return sorted(
        str(p.relative_to(root))
        for p in root.rglob("*")
        if p.is_file() and not p.name.startswith(".tmp-")
    )


def test_upload_then_download_round_trip(client: TestClient, store_dir: Path) -> None:
    task = claimed_task(client)
    data = os.urandom(3 * 1024 * 1024 + 17)  # several chunks
    answer = put(client, task, "weights.pt", data)
    assert answer.status_code == 201, answer.text
    stored = answer.json()
    assert stored["size"] == len(data) and stored["sha256"] == sha(data)
    assert stored["status"] == "stored" and stored["kind"] == "weights"
    got = client.get(f"/v1/tasks/{task['id']}/artifacts/weights.pt")
    assert got.status_code == 200 and got.content == data
    assert got.headers[SHA256_HEADER] == sha(data)
    listed = client.get(f"/v1/tasks/{task['id']}/artifacts").json()
    assert listed["count"] == 1 and listed["data"][0]["name"] == "weights.pt"
    by_experiment = client.get(f"/v1/experiments/{task['experiment_id']}/artifacts").json()
    assert by_experiment["count"] == 1
    assert len(visible_files(store_dir)) == 1


def test_same_name_replaces_and_the_old_bytes_go(client: TestClient, store_dir: Path) -> None:
    task = claimed_task(client)
    assert put(client, task, "w.pt", b"one").status_code == 201
    assert put(client, task, "w.pt", b"two").status_code == 201
    assert client.get(f"/v1/tasks/{task['id']}/artifacts/w.pt").content == b"two"
    _eventually(lambda: len(visible_files(store_dir)) == 1)


def test_a_stale_token_is_409_and_keeps_nothing(client: TestClient, store_dir: Path) -> None:
    task = claimed_task(client)
    answer = put(client, {**task, "lease_token": "not-the-token"}, "w.pt", b"x")
    assert answer.status_code == 409
    assert visible_files(store_dir) == []


def test_a_finished_tasks_checkpoint_is_409_but_its_weights_still_arrive(
    client: TestClient,
) -> None:
    task = claimed_task(client)
    body = {"lease_token": task["lease_token"], "metrics": {"val_accuracy": 0.5}}
    assert client.post(f"/v1/tasks/{task['id']}/complete", json=body).status_code == 200
    assert put(client, task, "c.pt", b"c", kind="checkpoint", epoch=1).status_code == 409
    assert put(client, task, "weights.pt", b"w").status_code == 201


@pytest.mark.parametrize(
    "name", ["..%2Fx", "%2Fetc%2Fpasswd", "a%00b", ".hidden", "a%2Fb", "x" * 129, "caf%C3%A9"]
)
def test_bad_names_are_422(client: TestClient, name: str) -> None:
    task = claimed_task(client)
    headers = {**task["worker_headers"], **upload_headers(task["lease_token"], b"x")}
    answer = client.put(f"/v1/tasks/{task['id']}/artifacts/{name}", content=b"x", headers=headers)
    assert answer.status_code == 422, (name, answer.status_code, answer.text)


def test_a_wrong_sha256_is_422_and_nothing_is_visible(client: TestClient, store_dir: Path) -> None:
    task = claimed_task(client)
    headers = {**upload_headers(task["lease_token"], b"other bytes")}
    answer = client.put(f"/v1/tasks/{task['id']}/artifacts/w.pt", content=b"bytes", headers=headers)
    assert answer.status_code == 422 and "sha256" in answer.json()["detail"]
    assert visible_files(store_dir) == []
    assert list(store_dir.rglob(".tmp-*")) == []
    assert client.get(f"/v1/tasks/{task['id']}/artifacts").json()["count"] == 0


def test_too_large_is_413_by_declared_length_and_by_stream(
    client: TestClient, store_dir: Path
) -> None:
    task = claimed_task(client)
    big = b"x" * (4 * 1024 * 1024 + 1)
    answer = put(client, task, "big.pt", big)
    assert answer.status_code == 413 and "MORPHML_ARTIFACT_MAX_BYTES" in answer.json()["detail"]

    def chunks() -> Any:  # no Content-Length: refused as the stream passes the limit
        for _ in range(5):
            yield b"y" * (1024 * 1024)

    headers = upload_headers(task["lease_token"], b"?")
    answer = client.put(
        f"/v1/tasks/{task['id']}/artifacts/big.pt", content=chunks(), headers=headers
    )
    assert answer.status_code == 413
    assert visible_files(store_dir) == [] and list(store_dir.rglob(".tmp-*")) == []


def test_the_experiment_limit_is_413(
    make_client: Callable[..., TestClient], store_dir: Path
) -> None:
    client = make_client(artifacts_url=f"file://{store_dir}", experiment_artifacts_max_bytes=1000)
    task = claimed_task(client)
    assert put(client, task, "a.pt", b"a" * 600).status_code == 201
    answer = put(client, task, "b.pt", b"b" * 600)
    assert answer.status_code == 413 and "EXPERIMENT_ARTIFACTS" in answer.json()["detail"]
    assert put(client, task, "a.pt", b"c" * 900).status_code == 201  # a replacement fits


def test_worker_credentials_and_roles(
    make_client: Callable[..., TestClient], store_dir: Path
) -> None:
    client = make_client(
        artifacts_url=f"file://{store_dir}", admin_token=ADMIN, worker_token=WORKER
    )
    admin = {"Authorization": f"Bearer {ADMIN}"}
    worker = {"Authorization": f"Bearer {WORKER}"}
    task = claimed_task(client, {"admin": admin, "worker": worker})
    assert put(client, task, "w.pt", b"w").status_code == 201
    other = client.post("/v1/workers", json={"name": "other"}, headers=worker).json()
    thief = {**worker, "X-MorphML-Worker-Credential": other["credential"]}
    assert put(client, {**task, "worker_headers": thief}, "w.pt", b"z").status_code == 403
    path = f"/v1/tasks/{task['id']}/artifacts/w.pt"
    assert client.get(path, headers=task["worker_headers"]).status_code == 403  # no lease token
    lease = {LEASE_TOKEN_HEADER: task["lease_token"]}
    assert client.get(path, headers={**task["worker_headers"], **lease}).content == b"w"
    assert client.get(path, headers={**thief, **lease}).status_code == 403
    assert client.get(f"/v1/tasks/{task['id']}/artifacts", headers=worker).status_code == 403
    assert client.delete(path, headers=worker).status_code == 403
    assert client.get(path, headers=admin).content == b"w"
    assert client.delete(path, headers=admin).status_code == 204
    assert client.get(path, headers=admin).status_code == 404
    assert visible_files(store_dir) == []


def test_a_corrupted_object_breaks_the_download(client: TestClient, store_dir: Path) -> None:
    task = claimed_task(client)
    assert put(client, task, "w.pt", b"a" * 1000).status_code == 201
    (stored,) = [p for p in store_dir.rglob("*") if p.is_file()]
    stored.write_bytes(b"b" * 1000)
    with pytest.raises(Exception, match="sha256"):
        client.get(f"/v1/tasks/{task['id']}/artifacts/w.pt")


def _finish_with(client: TestClient, value: float, **spec_overrides: Any) -> dict[str, Any]:
    task = claimed_task(client, **spec_overrides)
    assert put(client, task, "weights.pt", str(value).encode()).status_code == 201
    body = {"lease_token": task["lease_token"], "metrics": {"val_accuracy": value}}
    assert client.post(f"/v1/tasks/{task['id']}/complete", json=body).status_code == 200
    return task


def _eventually(check: Callable[[], bool], seconds: float = 5.0) -> None:
    import time

    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


@pytest.mark.parametrize(
    ("policy", "kept"),
    [
        ({"keep": "top_k", "k": 2}, {0.9, 0.7}),
        ({"keep": "best"}, {0.9}),
        ({"keep": "none"}, set()),
        ({"keep": "all"}, {0.5, 0.9, 0.7}),
    ],
)
def test_keep_policy(
    client: TestClient, store_dir: Path, policy: dict[str, Any], kept: set[float]
) -> None:
    experiment = client.post("/v1/experiments", json=_policy_spec(policy)).json()
    worker = client.post("/v1/workers", json={"name": "w"}).json()
    values: dict[int, float] = {}
    for value in (0.5, 0.9, 0.7):
        task = client.post(
            "/v1/tasks/claim", json={"worker_id": worker["id"], "wait_seconds": 0}
        ).json()
        task["worker_headers"] = {}
        values[task["id"]] = value
        assert put(client, task, "weights.pt", str(value).encode()).status_code == 201
        body = {"lease_token": task["lease_token"], "metrics": {"val_accuracy": value}}
        assert client.post(f"/v1/tasks/{task['id']}/complete", json=body).status_code == 200

    def weights() -> set[float]:
        listed = client.get(f"/v1/experiments/{experiment['id']}/artifacts").json()["data"]
        return {values[a["task_id"]] for a in listed}

    _eventually(lambda: weights() == kept and len(visible_files(store_dir)) == len(kept))


def _policy_spec(policy: dict[str, Any]) -> dict[str, Any]:
    from tests.server.support import spec

    return spec(artifacts=policy, parallelism=3, budget={"max_evaluations": 3})


def test_checkpoints_keep_the_latest_then_go_when_the_task_finishes(
    client: TestClient, store_dir: Path
) -> None:
    task = claimed_task(client)
    for epoch in (1, 2):
        answer = put(
            client, task, f"checkpoint-{epoch}.pt", b"c%d" % epoch, kind="checkpoint", epoch=epoch
        )
        assert answer.status_code == 201
    _eventually(lambda: len(visible_files(store_dir)) == 1)
    names = [a["name"] for a in client.get(f"/v1/tasks/{task['id']}/artifacts").json()["data"]]
    assert names == ["checkpoint-2.pt"]
    body = {"lease_token": task["lease_token"], "error": "boom", "retryable": False}
    assert client.post(f"/v1/tasks/{task['id']}/fail", json=body).status_code == 200
    _eventually(lambda: visible_files(store_dir) == [])
    assert client.get(f"/v1/tasks/{task['id']}/artifacts").json()["count"] == 0


def test_a_retried_task_is_claimed_with_its_latest_checkpoint(client: TestClient) -> None:
    task = claimed_task(client, parallelism=1)
    assert task["checkpoint"] is None
    put(client, task, "checkpoint-1.pt", b"one", kind="checkpoint", epoch=1)
    put(client, task, "checkpoint-2.pt", b"two", kind="checkpoint", epoch=2)
    body = {"lease_token": task["lease_token"], "error": "killed", "retryable": True}
    assert client.post(f"/v1/tasks/{task['id']}/fail", json=body).status_code == 200
    other = client.post("/v1/workers", json={"name": "next"}).json()
    again = client.post(
        "/v1/tasks/claim", json={"worker_id": other["id"], "wait_seconds": 0}
    ).json()
    assert again["id"] == task["id"] and again["attempt"] == 2
    checkpoint = again["checkpoint"]
    assert checkpoint["name"] == "checkpoint-2.pt" and checkpoint["epoch"] == 2
    assert checkpoint["sha256"] == sha(b"two")
    path = f"/v1/tasks/{task['id']}/artifacts/checkpoint-2.pt"
    assert client.get(path, headers={LEASE_TOKEN_HEADER: again["lease_token"]}).content == b"two"


def test_a_full_store_is_507_missing_and_the_result_still_counts(
    client: TestClient, store_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    from server.artifacts import file_store

    def no_space(self: Any, chunk: bytes) -> None:
        raise file_store.store_error(OSError(errno.ENOSPC, "No space left on device"), "write")

    monkeypatch.setattr(file_store.FileWriter, "write", no_space)
    task = claimed_task(client)
    answer = put(client, task, "weights.pt", b"w" * 100)
    assert answer.status_code == 507 and "No space left" in answer.json()["detail"]
    body = {"lease_token": task["lease_token"], "metrics": {"val_accuracy": 0.5}}
    assert client.post(f"/v1/tasks/{task['id']}/complete", json=body).json()["state"] == "completed"
    (artifact,) = client.get(f"/v1/tasks/{task['id']}/artifacts").json()["data"]
    assert artifact["status"] == "missing" and "No space left" in artifact["reason"]
    assert visible_files(store_dir) == [] and list(store_dir.rglob(".tmp-*")) == []
