"""The outbox on disk: atomic entries, oldest first, bad ones set aside; the work-dir lock."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from tests.worker.fakes import Disk
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
    outbox.put(Result.fail(1, "first", "x", retryable=True))
    outbox.put(Result.complete(1, "second", {"val_accuracy": 0.5}))
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


def test_a_nan_metric_on_disk_becomes_a_final_failure_that_says_so(tmp_path: Path) -> None:
    (tmp_path / "1-x.json").write_text(
        '{"task_id": 1, "outcome": "complete",'
        ' "body": {"lease_token": "a", "metrics": {"val_accuracy": NaN}}}'
    )
    (result,) = Outbox(tmp_path).pending()
    assert result.outcome == "fail" and result.body["retryable"] is False
    assert "val_accuracy" in result.error and "finite" in result.error
    json.dumps(result.body, allow_nan=False)  # postable


def test_error_text_with_a_lone_surrogate_is_kept_escaped(tmp_path: Path) -> None:
    # e.g. an evaluator's OSError about a file name that is not UTF-8
    result = Result.fail(1, "a", "OSError: cannot open 'data-\udcff.npz'\x00", retryable=True)
    assert result.error == "OSError: cannot open 'data-\\udcff.npz'"
    json.dumps(result.body, ensure_ascii=False).encode()  # what the HTTP client does with it
    Outbox(tmp_path).put(result)
    assert Outbox(tmp_path).pending() == [result]


def test_a_result_the_disk_refuses_is_kept_in_memory_until_delivered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    space = Disk(monkeypatch, tmp_path)
    space.full = True
    outbox = Outbox(tmp_path)
    result = Result.complete(1, "a", {"val_accuracy": 0.5})
    with pytest.raises(OSError, match="No space left"):
        outbox.put(result)
    assert outbox.pending() == [result] and not list(tmp_path.iterdir())
    outbox.remove(result)
    assert outbox.pending() == []


def test_a_work_dir_that_cannot_be_created_is_a_clear_exit(tmp_path: Path) -> None:
    (tmp_path / "work").write_text("a file where the work dir belongs")
    with pytest.raises(SystemExit, match=r"cannot use its work dir .*work.*File exists"):
        with WorkDirLock(tmp_path / "work"):
            pass
