"""Results kept on disk until the server acknowledged them, so a network blip or restart loses none.

A result is written (atomically, fsynced) before it is posted and deleted once the server answered
200, or 409/404 (the lease is gone: the server already holds a final answer for it). The work dir
is locked so that two agents never share (and double-post) one outbox.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from worker.http import ApiError, LeaseLost, ReportKind, ServerApi, Unreachable

log = logging.getLogger("morphml.worker")


@dataclass(frozen=True)
class Result:
    """One final answer for a task: `outcome` is "complete" or "fail", `body` is what is posted
    (a `CompleteRequest` or `FailRequest` of `morphml.wire`, as JSON)."""

    task_id: int
    outcome: ReportKind
    body: dict[str, Any]

    @property
    def name(self) -> str:
        # The lease token makes the name unique per attempt; hashing keeps it a safe file name.
        token = hashlib.sha256(str(self.body.get("lease_token")).encode()).hexdigest()[:16]
        return f"{int(self.task_id)}-{token}.json"

    @classmethod
    def from_json(cls, raw: Any) -> Result:
        """An entry read back from disk; ValueError unless its id is an integer (it ends up in a
        URL) and its outcome one of the two reports."""
        task_id, outcome, body = raw["task_id"], raw["outcome"], raw["body"]
        if isinstance(task_id, str) and task_id.isdecimal():
            task_id = int(task_id)  # entries written before ids were typed hold strings
        if not isinstance(task_id, int) or isinstance(task_id, bool):
            raise ValueError(f"task id {task_id!r} is not an integer")
        if outcome not in ("complete", "fail"):
            raise ValueError(f"unknown outcome {outcome!r}")
        if not isinstance(body, dict):
            raise ValueError("the body is not an object")
        return cls(task_id, outcome, body)


class Outbox:
    """A directory of pending results, one JSON file each."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self._flushing = threading.Lock()

    def put(self, result: Result) -> None:
        payload = {"task_id": result.task_id, "outcome": result.outcome, "body": result.body}
        path = self.directory / result.name
        temporary = path.with_suffix(".tmp")
        with temporary.open("w") as handle:
            json.dump(payload, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)

    def remove(self, result: Result) -> None:
        (self.directory / result.name).unlink(missing_ok=True)

    def pending(self) -> list[Result]:
        """Every result not yet acknowledged, oldest first; unreadable files are set aside."""
        results = []
        for path in sorted(self.directory.glob("*.json"), key=lambda p: p.stat().st_mtime):
            try:
                results.append(Result.from_json(json.loads(path.read_text())))
            except (OSError, ValueError, KeyError, TypeError) as exc:
                log.error("outbox: setting aside unreadable %s (%s)", path.name, exc)
                path.rename(path.with_suffix(".bad"))
        return results

    def deliver(self, api: ServerApi, result: Result, *, deadline: float) -> bool:
        """Post one result; True once it is final (acknowledged, or the lease is gone)."""
        try:
            api.report(result.task_id, result.outcome, result.body, deadline=deadline)
        except LeaseLost as exc:
            log.info("task %s: the server already holds a final answer (%s)", result.task_id, exc)
        except ApiError as exc:
            # Keeping a result the server rejects as invalid would block the outbox forever.
            log.error(
                "task %s: the server rejected the result, discarding it: %s", result.task_id, exc
            )
        except Unreachable as exc:
            log.warning("task %s: result kept in the outbox for later: %s", result.task_id, exc)
            return False
        self.remove(result)
        return True

    def flush(self, api: ServerApi, *, interrupt: threading.Event) -> None:
        """Post every pending result, oldest first, until one does not get through."""
        if not self._flushing.acquire(blocking=False):
            return  # another slot is at it
        try:
            for result in self.pending():
                deadline = time.monotonic() + 10
                if interrupt.is_set() or not self.deliver(api, result, deadline=deadline):
                    return
                log.info("task %s: redelivered %s from the outbox", result.task_id, result.outcome)
        finally:
            self._flushing.release()


class WorkDirLock:
    """An exclusive lock on the work dir, held while the agent runs (released even on kill -9)."""

    def __init__(self, work_dir: Path) -> None:
        self.path = work_dir / "agent.lock"
        self.handle: IO[str] | None = None

    def __enter__(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.handle = self.path.open("w")
        try:
            fcntl.flock(self.handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.handle.close()
            raise SystemExit(
                f"another morphml-worker uses {self.path.parent}; give this one its own --work-dir"
            ) from None

    def __exit__(self, *exc: object) -> None:
        if self.handle is not None:
            self.handle.close()
