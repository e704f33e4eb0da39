"""The sweep of unnamed objects with the file store, on SQLite and Postgres: bytes a crash left
before their row was written, or a replaced object whose delete failed, go once an hour old;
named, young and half-written ones stay; the reaper runs it at most once an hour."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from server.artifacts import cleanup
from tests.server.artifact_support import claimed_task, put

HOURS_AGO = time.time() - 2 * 3600


@pytest.fixture
def store_dir(tmp_path: Path) -> Path:
    return tmp_path / "artifacts"


@pytest.fixture
def client(make_client: Callable[..., TestClient], store_dir: Path) -> TestClient:
    return make_client(artifacts_url=f"file://{store_dir}")


def age(path: Path) -> Path:
    os.utime(path, (HOURS_AGO, HOURS_AGO))
    return path


def files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def test_old_objects_no_row_names_go_and_the_rest_stay(client: TestClient, store_dir: Path) -> None:
    task = claimed_task(client)
    assert put(client, task, "weights.pt", b"kept").status_code == 201
    (named,) = [age(p) for p in store_dir.rglob("*") if p.is_file()]  # old, but named
    folder = named.parent
    orphan = folder / "0123456789abcdef-weights.pt"  # a crash before its row was written
    orphan.write_bytes(b"orphan")
    age(orphan)
    young = folder / "fedcba9876543210-weights.pt"  # an upload whose row is being written
    young.write_bytes(b"young")
    temp = folder / ".tmp-half-written"  # a live upload's temp file: the store's own business
    temp.write_bytes(b"half")
    age(temp)
    before = files(store_dir)
    engine, store = client.app.state.engine, client.app.state.artifacts  # type: ignore[attr-defined]
    assert cleanup.sweep_unnamed(engine, store) == 1
    assert files(store_dir) == before - {str(orphan.relative_to(store_dir))}
    assert client.get(f"/v1/tasks/{task['id']}/artifacts/weights.pt").content == b"kept"
    assert cleanup.sweep_unnamed(engine, store) == 0


def test_a_replaced_object_whose_delete_failed_is_found(
    client: TestClient, store_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from server.artifacts import file_store

    def refuse(self: object, key: str) -> None:
        raise file_store.StoreError("delete failed: read-only")

    task = claimed_task(client)
    with monkeypatch.context() as patched:
        patched.setattr(file_store.FileStore, "delete", refuse)
        assert put(client, task, "w.pt", b"one").status_code == 201
        assert put(client, task, "w.pt", b"two").status_code == 201  # "one" is left behind
        time.sleep(0.3)  # its background delete fails
    assert len(files(store_dir)) == 2
    for path in store_dir.rglob("*"):
        if path.is_file():
            age(path)
    engine, store = client.app.state.engine, client.app.state.artifacts  # type: ignore[attr-defined]
    assert cleanup.sweep_unnamed(engine, store) == 1
    assert client.get(f"/v1/tasks/{task['id']}/artifacts/w.pt").content == b"two"


def test_the_reaper_sweeps_at_most_once_an_hour(client: TestClient, store_dir: Path) -> None:
    engine, store = client.app.state.engine, client.app.state.artifacts  # type: ignore[attr-defined]
    orphan = store_dir / "experiments" / "1" / "tasks" / "1" / "0000000000000000-x.pt"
    orphan.parent.mkdir(parents=True)
    orphan.write_bytes(b"x")
    age(orphan)
    start = 1_000_000.0
    assert cleanup.sweep_unnamed_if_due(engine, store, start) == 0  # the clock starts
    assert cleanup.sweep_unnamed_if_due(engine, store, start + 60) == 0
    assert orphan.exists()
    assert cleanup.sweep_unnamed_if_due(engine, store, start + 3601) == 1
    assert not orphan.exists()
