"""Final artifacts the server could not take yet, kept on disk and sent again with backoff.

A completed task's weights (and saved files) are uploaded before its result is posted; when that
upload does not get through (the store is full or unreachable) the result is posted all the same
and the file moves here, `outbox/artifacts/<entry>.data` with `<entry>.json` beside it (task, name,
kind, the lease token that completed the task, the worker credential). The agent's outbox flush
sends them again: after a failure the next try waits 30 s, doubling up to 10 minutes, so a full
store is not hammered; a refusal (409/404: the task is not this attempt's any more; 413, 422) is
final and the file is deleted, with a log line that says why.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from worker import disk
from worker.artifacts import ArtifactRefused, Saved, StoreUnavailable, upload
from worker.http import ServerApi

log = logging.getLogger("morphml.worker")

FIRST_RETRY_SECONDS = 30.0
MAX_RETRY_SECONDS = 600.0
UPLOAD_SECONDS = 30.0


@dataclass(frozen=True)
class PendingUpload:
    """One kept artifact: what to PUT, and under which lease and credential."""

    task_id: int
    lease_token: str
    saved: Saved
    credential: str | None
    meta: Path  # its `.json`


class ArtifactOutbox:
    """The `artifacts/` directory of the agent's outbox."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._flushing = threading.Lock()
        self._failures = 0
        self._retry_at = 0.0

    def keep(self, task_id: int, lease_token: str, saved: Saved, credential: str | None) -> bool:
        """Move the file here (out of the task dir, which is about to go); False when the disk
        will not have it (the artifact is then lost, and the log says so)."""
        token = hashlib.sha256(lease_token.encode()).hexdigest()[:16]
        entry = self.directory / f"{int(task_id)}-{token}-{saved.name}"
        data, meta_path = (
            entry.with_name(entry.name + ".data"),
            entry.with_name(entry.name + ".json"),
        )
        meta = {"task_id": int(task_id), "lease_token": lease_token, "name": saved.name,
                "kind": saved.kind, "epoch": saved.epoch, "credential": credential}  # fmt: skip
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            os.replace(saved.path, data)
            disk.write_file(meta_path, json.dumps(meta).encode())
        except OSError as exc:
            log.error(
                "task %d: %s is lost: the outbox cannot keep it (%s)", task_id, saved.name, exc
            )
            data.unlink(missing_ok=True)
            return False
        return True

    def flush(self, api: ServerApi, *, interrupt: threading.Event) -> None:
        """Upload what is kept, oldest first, until one does not get through."""
        if time.monotonic() < self._retry_at or not self._flushing.acquire(blocking=False):
            return
        try:
            for pending in self._entries():
                if interrupt.is_set() or not self._send(api, pending):
                    return
        finally:
            self._flushing.release()

    def pending(self) -> list[PendingUpload]:
        return list(self._entries())

    def _send(self, api: ServerApi, pending: PendingUpload) -> bool:
        """False when the store still cannot take it (the next flush waits longer)."""
        deadline = time.monotonic() + UPLOAD_SECONDS
        name, task_id = pending.saved.name, pending.task_id
        try:
            upload(api, task_id, pending.lease_token, pending.saved,
                   deadline=deadline, credential=pending.credential)  # fmt: skip
        except StoreUnavailable as exc:
            self._failures += 1
            wait = min(MAX_RETRY_SECONDS, FIRST_RETRY_SECONDS * 2 ** (self._failures - 1))
            self._retry_at = time.monotonic() + wait
            log.warning("task %d: %s still not uploaded (%s); next try in %.0fs",
                        task_id, name, exc, wait)  # fmt: skip
            return False
        except (ArtifactRefused, OSError) as exc:
            log.error("task %d: %s dropped from the outbox: %s", task_id, name, exc)
        else:
            log.info("task %d: uploaded %s from the outbox", task_id, name)
        self._failures, self._retry_at = 0, 0.0
        self._remove(pending)
        return True

    def _remove(self, pending: PendingUpload) -> None:
        for path in (pending.saved.path, pending.meta):
            try:
                path.unlink(missing_ok=True)
            except OSError as exc:
                log.error("outbox: cannot remove %s (%s)", path, exc)

    def _entries(self) -> list[PendingUpload]:
        try:
            metas = sorted(self.directory.glob("*.json"), key=_age)
        except OSError:
            return []
        entries = []
        for meta in metas:
            entry = _load(meta)
            if entry is not None:
                entries.append(entry)
        return entries


def _load(meta: Path) -> PendingUpload | None:
    try:
        raw: Any = json.loads(meta.read_text())
        saved = Saved(raw["name"], meta.with_suffix(".data"), raw["kind"], raw.get("epoch"))
        return PendingUpload(int(raw["task_id"]), str(raw["lease_token"]), saved,
                             raw.get("credential"), meta)  # fmt: skip
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.error("outbox: %s is unreadable (%s); set aside as .bad", meta.name, exc)
        try:
            meta.rename(meta.with_suffix(".bad"))
        except OSError:
            pass
        return None


def _age(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return float("inf")
