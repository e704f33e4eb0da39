"""Helpers for the artifact tests: a claimed task and an upload of some bytes under its lease."""

from __future__ import annotations

import hashlib
from typing import Any

from starlette.testclient import TestClient

from morphml.wire import ARTIFACT_KIND_HEADER, EPOCH_HEADER, LEASE_TOKEN_HEADER, SHA256_HEADER
from tests.server.support import spec, worker_body


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def claimed_task(
    client: TestClient, headers: dict[str, str] | None = None, **spec_overrides: Any
) -> dict[str, Any]:
    """A new experiment's first task, claimed by a new worker; `worker_headers` included."""
    headers = headers or {}
    admin = headers.get("admin", {})
    worker = headers.get("worker", {})
    assert (
        client.post("/v1/experiments", json=spec(**spec_overrides), headers=admin).status_code
        == 201
    )
    registered = client.post("/v1/workers", json=worker_body(), headers=worker).json()
    worker_headers = dict(worker)
    if registered.get("credential"):
        worker_headers["X-MorphML-Worker-Credential"] = registered["credential"]
    answer = client.post(
        "/v1/tasks/claim",
        json={"worker_id": registered["id"], "wait_seconds": 0},
        headers=worker_headers,
    )
    assert answer.status_code == 200, answer.text
    return {**answer.json(), "worker_headers": worker_headers, "worker_id": registered["id"]}


def upload_headers(
    token: str, data: bytes, kind: str = "weights", epoch: int | None = None, **extra: str
) -> dict[str, str]:
    headers = {LEASE_TOKEN_HEADER: token, SHA256_HEADER: sha(data), ARTIFACT_KIND_HEADER: kind}
    if epoch is not None:
        headers[EPOCH_HEADER] = str(epoch)
    return {**headers, **extra}


def put(client: TestClient, task: dict[str, Any], name: str, data: bytes, **options: Any) -> Any:
    headers = {**task["worker_headers"], **upload_headers(task["lease_token"], data, **options)}
    return client.put(f"/v1/tasks/{task['id']}/artifacts/{name}", content=data, headers=headers)
