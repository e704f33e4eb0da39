"""The outbox on disk: atomic entries, oldest first, bad ones set aside; the work-dir lock."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from worker.outbox import Outbox, Result, WorkDirLock


def test_results_survive_a_new_outbox_object_oldest_first(tmp_path: Path) -> None:
    first = Result(1, "complete", {"lease_token": "a", "metrics": {"val_accuracy": 0.5}})
    second = Result(2, "fail", {"lease_token": "b", "error": "x", "retryable": True})
    Outbox(tmp_path).put(first)
    os.utime(tmp_path / first.name, (time.time() - 10, time.time() - 10))
    Outbox(tmp_path).put(second)
    assert Outbox(tmp_path).pending() == [first, second]
    Outbox(tmp_path).remove(first)
    assert Outbox(tmp_path).pending() == [second]
    assert not list(tmp_path.glob("*.tmp"))


def test_each_attempt_of_a_task_has_its_own_entry(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path)
    outbox.put(Result(1, "fail", {"lease_token": "first"}))
    outbox.put(Result(1, "complete", {"lease_token": "second"}))
    assert len(outbox.pending()) == 2
    assert all(p.parent == tmp_path for p in tmp_path.iterdir())


@pytest.mark.parametrize(
    "entry",
    [
        "{not json",
        json.dumps({"task_id": "../1", "outcome": "fail", "body": {}}),
        json.dumps({"task_id": 1, "outcome": "../../workers", "body": {}}),
        json.dumps({"task_id": 1, "outcome": "fail", "body": []}),
    ],
)
def test_an_unreadable_entry_is_set_aside(tmp_path: Path, entry: str) -> None:
    (tmp_path / "broken.json").write_text(entry)
    assert Outbox(tmp_path).pending() == []
    assert (tmp_path / "broken.bad").exists()


def test_an_entry_of_an_older_agent_with_a_string_id_is_read(tmp_path: Path) -> None:
    body = {"lease_token": "a", "error": "x", "retryable": True}
    (tmp_path / "7-x.json").write_text(
        json.dumps({"task_id": "7", "outcome": "fail", "body": body})
    )
    assert Outbox(tmp_path).pending() == [Result(7, "fail", body)]


def test_two_agents_cannot_share_a_work_dir(tmp_path: Path) -> None:
    with WorkDirLock(tmp_path), pytest.raises(SystemExit, match="own --work-dir"):
        with WorkDirLock(tmp_path):
            pass
    with WorkDirLock(tmp_path):  # released when the first agent stopped
        pass
