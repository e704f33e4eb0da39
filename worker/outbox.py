"""Results kept on disk until the server acknowledged them, so a network blip or restart loses none.

A result is written (atomically, fsynced) before it is posted and deleted once the server answered
200, or 409/404 (the lease is gone: the server already holds a final answer for it).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger("morphml.worker")


@dataclass(frozen=True)
class Result:
    """One final answer for a task: `outcome` is "complete" or "fail", `body` is what is posted."""

    task_id: str
    outcome: str
    body: dict[str, Any]

    @property
    def name(self) -> str:
        # The lease token makes the name unique per attempt; hashing keeps it a safe file name.
        token = hashlib.sha256(str(self.body.get("lease_token")).encode()).hexdigest()[:16]
        safe_id = "".join(c if c.isalnum() or c in "-_" else "_" for c in self.task_id)[:64]
        return f"{safe_id}-{token}.json"


class Outbox:
    """A directory of pending results, one JSON file each."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)

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
                raw = json.loads(path.read_text())
                results.append(Result(str(raw["task_id"]), str(raw["outcome"]), dict(raw["body"])))
            except (OSError, ValueError, KeyError, TypeError) as exc:
                log.error("outbox: setting aside unreadable %s (%s)", path.name, exc)
                path.rename(path.with_suffix(".bad"))
        return results
