"""One task run's artifacts: the files it starts from, its checkpoints, its final uploads.

- Before the child gets the task: a resumed attempt's checkpoint (`ClaimedTask.checkpoint`) and a
  promotion's lower-rung weights (`ClaimedTask.warm_start`) are downloaded into the task dir and
  named in its spec. Any problem (gone, corrupt, refused) is logged and the task starts from
  scratch: a lost checkpoint costs epochs, never the task.
- While it runs: each checkpoint the child saves goes to a `CheckpointUploader`, a thread of the
  task's own, so heartbeats never wait for an upload; a newer checkpoint supersedes one not sent.
- When it ends: completed, its final files (weights first) are uploaded before the result is
  posted; one that does not get through moves to the artifact outbox and the result is posted
  all the same. Failed retryably, the latest checkpoint gets a few seconds to reach the server
  (the next attempt resumes from it). Otherwise pending uploads are called off.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

from morphml.wire import ArtifactPublic, ClaimedTask
from worker.artifact_outbox import ArtifactOutbox
from worker.artifacts import (
    ArtifactRefused,
    Cancelled,
    Saved,
    StoreUnavailable,
    download,
    upload,
)
from worker.http import ServerApi
from worker.runner import Outcome

log = logging.getLogger("morphml.worker")

INPUTS_DIR = "inputs"
UPLOAD_SECONDS = 30.0
# How long a retryably failed task waits for its latest checkpoint to reach the server.
FLUSH_SECONDS = 10.0
CANCEL_SECONDS = 5.0
MAX_SAVED = 100  # files a task may ask to keep, beyond its checkpoints


class TaskArtifacts:
    def __init__(
        self, api: ServerApi, outbox: ArtifactOutbox, task: ClaimedTask, task_dir: Path
    ) -> None:
        self.api, self.outbox, self.task, self.task_dir = api, outbox, task, task_dir
        self.final: list[Saved] = []
        self.uploader: CheckpointUploader | None = None
        # Uploads must end while the lease surely holds (no heartbeat is sent meanwhile).
        self.upload_seconds = min(UPLOAD_SECONDS, (task.lease_seconds or 60) / 3)

    def fetch_inputs(self) -> dict[str, str]:
        """The spec's `checkpoint` and `warm_start`: local paths of those that could be had."""
        files = {}
        for key, artifact in (("checkpoint", self.task.checkpoint),
                              ("warm_start", self.task.warm_start)):  # fmt: skip
            if artifact is not None and artifact.status == "stored":
                path = self._fetch(key, artifact)
                if path is not None:
                    files[key] = str(path)
        return files

    def take(self, saved: list[Saved]) -> None:
        for item in saved:
            if item.kind == "checkpoint":
                self._checkpoints().offer(item)
            elif len(self.final) < MAX_SAVED:
                self.final.append(item)

    def finish(self, outcome: Outcome) -> None:
        """Before the result is posted: what the outcome calls for (see the module's doc)."""
        if outcome.metrics is not None:
            self.close()  # the server drops a finished task's checkpoint anyway
            for saved in sorted(self.final, key=lambda s: s.kind != "weights"):
                self._send_final(saved)
        elif outcome.retryable and outcome.dropped is None and self.uploader is not None:
            self.uploader.close(flush_within=FLUSH_SECONDS)

    def close(self) -> None:
        if self.uploader is not None:
            self.uploader.close(flush_within=None)

    def _checkpoints(self) -> CheckpointUploader:
        if self.uploader is None:
            self.uploader = CheckpointUploader(self.api, self.task, self.upload_seconds)
        return self.uploader

    def _fetch(self, key: str, artifact: ArtifactPublic) -> Path | None:
        destination = self.task_dir / INPUTS_DIR / f"{key}.pt"
        try:
            download(self.api, artifact.task_id, artifact.name, self.task.lease_token,
                     destination, expected_sha256=artifact.sha256)  # fmt: skip
        except (ArtifactRefused, StoreUnavailable, OSError) as exc:
            log.warning("task %d: cannot fetch its %s (%s); starting from scratch",
                        self.task.id, key.replace("_", " "), exc)  # fmt: skip
            return None
        task = self.task
        log.info("task %d (attempt %d): fetched its %s %s (epoch %s)", task.id, task.attempt,
                 key.replace("_", " "), artifact.name, artifact.epoch)  # fmt: skip
        return destination

    def _send_final(self, saved: Saved) -> None:
        task = self.task
        try:
            upload(self.api, task.id, task.lease_token, saved,
                   deadline=time.monotonic() + self.upload_seconds)  # fmt: skip
        except StoreUnavailable as exc:
            log.warning("task %d: %s kept in the outbox for later: %s", task.id, saved.name, exc)
            self.outbox.keep(task.id, task.lease_token, saved, self.api.credential)
        except (ArtifactRefused, OSError) as exc:
            log.error("task %d: %s not uploaded: %s", task.id, saved.name, exc)


class CheckpointUploader:
    """Uploads a task's latest checkpoint in the background, the newest first."""

    def __init__(self, api: ServerApi, task: ClaimedTask, upload_seconds: float) -> None:
        self.api, self.task, self.upload_seconds = api, task, upload_seconds
        self.sent: list[int | None] = []  # the epochs uploaded, in order
        self._latest: Saved | None = None
        self._closing = False
        self._changed = threading.Condition()
        self._cancel = threading.Event()  # calls off the upload in flight, and the rest
        self._thread = threading.Thread(
            target=self._run, name=f"checkpoints of task {task.id}", daemon=True
        )
        self._thread.start()

    def offer(self, saved: Saved) -> None:
        with self._changed:
            self._latest = saved
            self._changed.notify_all()

    def close(self, *, flush_within: float | None) -> None:
        """Stop: at once (None), or once the pending checkpoint is sent or `flush_within`
        seconds have passed."""
        with self._changed:
            self._closing = True
            self._changed.notify_all()
        if flush_within is not None:
            self._thread.join(flush_within)
        self._cancel.set()
        # An upload called off ends at its next chunk; one waiting for its answer is left to
        # finish on its own rather than hold the task's result.
        self._thread.join(CANCEL_SECONDS)

    def _next(self) -> Saved | None:
        with self._changed:
            while self._latest is None and not self._closing:
                self._changed.wait()
            saved, self._latest = self._latest, None
            return saved

    def _run(self) -> None:
        attempt = 0
        while not self._cancel.is_set() and (saved := self._next()) is not None:
            if self._send(saved):
                attempt = 0
                continue
            with self._changed:
                if self._latest is None:  # not superseded: try it again after a pause
                    self._latest = saved
            if self.api.pause(self.api.backoff.delay(attempt), self._cancel):
                return
            attempt += 1

    def _send(self, saved: Saved) -> bool:
        """True when done with it (sent, superseded, refused for good)."""
        task = self.task
        try:
            upload(self.api, task.id, task.lease_token, saved, cancel=self._cancel,
                   deadline=time.monotonic() + self.upload_seconds)  # fmt: skip
        except FileNotFoundError:  # the child wrote a newer one meanwhile
            return True
        except Cancelled:
            return True
        except ArtifactRefused as exc:
            log.warning("task %d: checkpoint not uploaded: %s", task.id, exc)
            if exc.lease_lost or exc.status in (413, 422):
                self._cancel.set()  # the next ones would be refused the same way
            return True
        except (StoreUnavailable, OSError) as exc:
            log.warning("task %d: checkpoint of epoch %s not uploaded yet: %s",
                        task.id, saved.epoch, exc)  # fmt: skip
            return False
        self.sent.append(saved.epoch)
        log.debug("task %d: checkpoint of epoch %s uploaded", task.id, saved.epoch)
        return True
