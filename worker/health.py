"""A circuit breaker on this machine's own failures, so that a sick worker does not eat the queue.

A full or read-only disk, or a machine that cannot start processes, fails every task at once;
claiming on would fail task after task in seconds (and burn their attempts). After `threshold`
local failures in a row the breaker opens: the agent stops claiming and logs, as an ERROR, why
and what the operator should do. After a pause (doubling up to `max_pause`) it probes the machine
(`worker.disk.probe_dir` on the task and outbox dirs, `probe_process`); a probe that passes lets
one task through, and only a task that ran without a local failure closes the breaker for good.

The agent also probes before its first claim, so a worker started on a broken work dir claims
nothing at all.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from worker import disk

log = logging.getLogger("morphml.worker")


def probe_machine(work_dir: Path) -> None:
    """Raise `OSError` unless a task could run here: its dirs are writable, a process starts."""
    for directory in (work_dir / "tasks", work_dir / "outbox"):
        disk.probe_dir(directory)
    disk.probe_process()


class Health:
    """Counts local failures in a row and says when claiming must pause. Shared by all slots."""

    def __init__(
        self,
        work_dir: Path,
        *,
        threshold: int = 3,
        first_pause: float = 30.0,
        max_pause: float = 600.0,
        probe: Callable[[Path], None] = probe_machine,
    ) -> None:
        self.work_dir = work_dir
        self.threshold = threshold
        self.first_pause = first_pause
        self.max_pause = max_pause
        self.probe = probe
        self._lock = threading.Lock()
        self._failures = 0  # local failures in a row
        self._pause = 0.0  # the current pause; 0 until the breaker first opens
        self._retry_at: float | None = 0.0  # None: claiming; else when to probe (0: before start)
        self._unhealthy = False  # the breaker opened (and has not closed since)
        self.reason = ""

    @property
    def healthy(self) -> bool:
        with self._lock:
            return not self._unhealthy

    def pause_before_claim(self) -> float:
        """0 when a slot may claim now, else seconds until the next check (probing when due)."""
        with self._lock:  # one slot probes; the others wait for its verdict
            if self._retry_at is None:
                return 0.0
            now = time.monotonic()
            if now < self._retry_at:
                return self._retry_at - now
            try:
                self.probe(self.work_dir)
            except OSError as exc:
                self._open(f"this machine cannot run tasks: {exc}", exc, probed=True)
                return self._pause
            if self._unhealthy:
                log.warning(
                    "health check passed (%s is writable, evaluation processes start): "
                    "claiming again",
                    self.work_dir,
                )
                self._failures = self.threshold - 1  # one more failure opens the breaker again
            self._retry_at = None
            return 0.0

    def check(self) -> OSError | None:
        """Probe now, changing nothing: the error, or None when a task could run here."""
        try:
            self.probe(self.work_dir)
        except OSError as exc:
            return exc
        return None

    def failure(self, reason: str, error: BaseException | None = None) -> None:
        """A task could not run (or its result could not be kept) because of this machine."""
        with self._lock:
            self._failures += 1
            if self._failures >= self.threshold and self._retry_at is None:
                self._open(reason, error, probed=False)

    def success(self) -> None:
        """A task ran and its result was kept without a local failure."""
        with self._lock:
            if self._retry_at is not None:
                return  # a task claimed before the breaker opened: the probes decide
            if self._unhealthy:
                log.warning("healthy again: a task ran normally; claiming as usual")
                self._unhealthy = False
            self._failures = 0
            self._pause = 0.0

    def _open(self, reason: str, error: BaseException | None, *, probed: bool) -> None:
        if self._unhealthy:  # a probe, or the task let through after one, failed again
            self._pause = min(max(self._pause * 2, self.first_pause), self.max_pause)
            head = "still unhealthy"
        else:
            self._pause = self.first_pause
            head = (
                "unhealthy"  # the check before the first claim failed
                if probed
                else f"unhealthy after {self._failures} local failures in a row"
            )
        handed = "" if probed else " (the tasks that failed here were handed back to the server)"
        self._unhealthy = True
        self.reason = reason
        self._retry_at = time.monotonic() + self._pause
        log.error(
            "%s: %s. Not claiming tasks%s. To fix: %s. Checking again in %.3gs.",
            head, reason, handed, disk.advice(error, self.work_dir), self._pause,
        )  # fmt: skip
