"""The s3:// artifact store against moto's standalone S3 server on a loopback port (a real HTTP
endpoint, as MinIO would be): round trip, atomicity, limits, and a store that stops answering."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from morphml.cli.processes import free_port
from server.artifacts import StoreUnavailableError
from server.artifacts.s3_store import PART_BYTES
from server.artifacts.stream import ChecksumMismatchError, TooLargeError, Upload
from server.config import Settings
from tests.server.artifact_support import claimed_task, put, sha

moto_server = pytest.importorskip("moto.server")  # in the dev extra; CI=true fails a skip
boto3 = pytest.importorskip("boto3")

BUCKET = "morphml-test"
CREDENTIALS = {"artifacts_s3_access_key_id": "test", "artifacts_s3_secret_access_key": "test"}


@pytest.fixture
def s3_endpoint() -> Iterator[Any]:
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
    server.start()
    url = f"http://127.0.0.1:{server._port}"
    client = boto3.client(
        "s3",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    # moto's backend outlives a server in the same process: start from nothing.
    import urllib.request

    urllib.request.urlopen(urllib.request.Request(f"{url}/moto-api/reset", method="POST"))
    client.create_bucket(Bucket=BUCKET)
    server.url, server.client = url, client
    try:
        yield server
    finally:
        server.stop()


def s3_settings(endpoint: Any, **overrides: Any) -> dict[str, Any]:
    return {
        "artifacts_url": f"s3://{BUCKET}/runs",
        "artifacts_s3_endpoint_url": endpoint.url,
        "artifacts_s3_region": "us-east-1",
        **CREDENTIALS,
        **overrides,
    }


def objects(endpoint: Any) -> list[str]:
    listed = endpoint.client.list_objects_v2(Bucket=BUCKET)
    return [item["Key"] for item in listed.get("Contents", [])]


def uploads_in_progress(endpoint: Any) -> list[Any]:
    return endpoint.client.list_multipart_uploads(Bucket=BUCKET).get("Uploads", [])


@pytest.fixture
def client(make_client: Callable[..., TestClient], s3_endpoint: Any) -> TestClient:
    return make_client(**s3_settings(s3_endpoint, artifact_max_bytes=3 * PART_BYTES))


def test_round_trip_small_and_multipart(client: TestClient, s3_endpoint: Any) -> None:
    task = claimed_task(client)
    for name, data in (("small.pt", b"tiny"), ("big.pt", os.urandom(2 * PART_BYTES + 123))):
        answer = put(client, task, name, data)
        assert answer.status_code == 201, answer.text
        got = client.get(f"/v1/tasks/{task['id']}/artifacts/{name}")
        assert got.content == data and got.headers["x-morphml-sha256"] == sha(data)
    assert len(objects(s3_endpoint)) == 2
    assert all(key.startswith("runs/experiments/") for key in objects(s3_endpoint))
    assert uploads_in_progress(s3_endpoint) == []


def test_a_wrong_checksum_or_too_large_leaves_nothing(client: TestClient, s3_endpoint: Any) -> None:
    task = claimed_task(client)
    data = os.urandom(2 * PART_BYTES)  # parts are sent before the checksum can be known
    headers_for_other = {**task, "lease_token": task["lease_token"]}
    answer = client.put(
        f"/v1/tasks/{task['id']}/artifacts/w.pt",
        content=data,
        headers={
            "X-MorphML-Lease-Token": task["lease_token"],
            "X-MorphML-Sha256": sha(b"something else"),
            "X-MorphML-Artifact-Kind": "weights",
        },
    )
    assert answer.status_code == 422
    assert headers_for_other

    def chunks() -> Iterator[bytes]:
        for _ in range(4):
            yield b"z" * PART_BYTES

    headers = {"X-MorphML-Lease-Token": task["lease_token"], "X-MorphML-Sha256": sha(b"?")}
    answer = client.put(f"/v1/tasks/{task['id']}/artifacts/w.pt", content=chunks(), headers=headers)
    assert answer.status_code == 413
    assert objects(s3_endpoint) == [] and uploads_in_progress(s3_endpoint) == []


def test_unreachable_store_is_503_missing_and_the_result_still_counts(
    client: TestClient, s3_endpoint: Any
) -> None:
    task = claimed_task(client)
    s3_endpoint.stop()
    answer = put(client, task, "weights.pt", b"w" * 1000)
    assert answer.status_code == 503
    assert "artifact store" in answer.json()["detail"] and "Traceback" not in answer.text
    body = {"lease_token": task["lease_token"], "metrics": {"val_accuracy": 0.75}}
    done = client.post(f"/v1/tasks/{task['id']}/complete", json=body)
    assert done.status_code == 200 and done.json()["state"] == "completed"
    (artifact,) = client.get(f"/v1/tasks/{task['id']}/artifacts").json()["data"]
    assert artifact["status"] == "missing" and "artifact store" in artifact["reason"]
    download = client.get(f"/v1/tasks/{task['id']}/artifacts/weights.pt")
    assert download.status_code == 404 and "missing" in download.json()["detail"]


def test_the_writer_commits_only_a_matching_whole_object(s3_endpoint: Any) -> None:
    from server.artifacts import open_store

    store = open_store(Settings(**s3_settings(s3_endpoint)))
    data = os.urandom(PART_BYTES + 5)
    upload = Upload(store.writer("a/b"), max_bytes=10 * PART_BYTES, limit="limit")
    upload.feed(data)
    assert objects(s3_endpoint) == []  # a part is sent, nothing is visible
    with pytest.raises(ChecksumMismatchError):
        upload.finish(sha(b"not it"))
    upload.abort()
    assert objects(s3_endpoint) == [] and uploads_in_progress(s3_endpoint) == []
    upload = Upload(store.writer("a/b"), max_bytes=4, limit="over 4 bytes")
    with pytest.raises(TooLargeError, match="over 4 bytes"):
        upload.feed(b"12345")
    upload.abort()
    upload = Upload(store.writer("a/b"), max_bytes=10 * PART_BYTES, limit="limit")
    upload.feed(data)
    upload.finish(sha(data))
    assert b"".join(store.read("a/b")) == data
    assert list(store.keys()) == ["a/b"]
    assert list(store.keys(older_than=3600)) == []  # the unnamed-object sweep's age filter
    assert list(store.keys(older_than=-60)) == ["a/b"]
    store.delete("a/b")
    assert list(store.keys()) == []
    s3_endpoint.stop()
    with pytest.raises(StoreUnavailableError):
        store.delete("a/b")
