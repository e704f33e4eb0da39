"""Artifact uploads against a real `morphml-server` process: a body over the limit is refused
before it is read, and a server killed mid-upload leaves no partial artifact after restart."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import httpx
import pytest

from tests.server.artifact_support import sha
from tests.server.support import spec, worker_body
from tests.server.test_process import Server, serving

pytestmark = pytest.mark.slow
LIMIT = 1024 * 1024


def _claimed(url: str) -> dict[str, object]:
    with httpx.Client(base_url=url, timeout=10) as http:
        assert http.post("/v1/experiments", json=spec()).status_code == 201
        worker = http.post("/v1/workers", json=worker_body()).json()
        task = http.post("/v1/tasks/claim", json={"worker_id": worker["id"], "wait_seconds": 0})
        return dict(task.json())


def _request_head(task: dict[str, object], length: int, digest: str) -> bytes:
    return (
        f"PUT /v1/tasks/{task['id']}/artifacts/w.pt HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"X-MorphML-Lease-Token: {task['lease_token']}\r\nX-MorphML-Sha256: {digest}\r\n"
        f"X-MorphML-Artifact-Kind: weights\r\nContent-Length: {length}\r\n\r\n"
    ).encode()


def test_a_declared_body_over_the_limit_is_413_before_any_byte_is_sent(tmp_path: Path) -> None:
    settings = {"MORPHML_ARTIFACT_MAX_BYTES": str(LIMIT)}
    with serving(f"sqlite:///{tmp_path / 'm.db'}", tmp_path, **settings) as server:
        task = _claimed(server.url)
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(_request_head(task, 10 * 1024**3, "0" * 64))  # 10 GiB, never sent
            answer = b""
            while b"}" not in answer and (more := sock.recv(4096)):
                answer += more
        assert answer.startswith(b"HTTP/1.1 413") and b"MORPHML_ARTIFACT_MAX_BYTES" in answer


def test_kill_9_mid_upload_leaves_no_partial_artifact(tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path / 'm.db'}"
    store = tmp_path / "store"
    settings = {"MORPHML_ARTIFACTS_URL": f"file://{store}"}
    server = Server(database, tmp_path / "server.log", **settings)
    try:
        task = _claimed(server.url)
        data = b"x" * (8 * 1024 * 1024)
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(_request_head(task, len(data), sha(data)))
            sock.sendall(data[: len(data) // 2])
            deadline = time.monotonic() + 10
            while not list(store.rglob(".tmp-*")):  # the server is writing it
                assert time.monotonic() < deadline
                time.sleep(0.02)
            server.kill()
    finally:
        server.stop()
    with serving(database, tmp_path, **settings) as restarted:
        with httpx.Client(base_url=restarted.url, timeout=10) as http:
            assert http.get(f"/v1/tasks/{task['id']}/artifacts").json()["count"] == 0
            assert http.get(f"/v1/tasks/{task['id']}/artifacts/w.pt").status_code == 404
    visible = [p for p in store.rglob("*") if p.is_file() and not p.name.startswith(".tmp-")]
    assert visible == []
