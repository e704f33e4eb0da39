"""One claimed task's life on a slot: start its child, supervise it, heartbeat, report the result.

The agent claims a task and hands it to a `TaskRun`; the run owns it from then on. It ends the
task one of three ways: a result (metrics or an error) kept in the outbox and posted, or nothing
reported when the lease is gone or the server said stop (`Outcome.dropped`).
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from worker.config import WorkerSettings
from worker.http import ApiError, LeaseLost, ServerApi, Unreachable
from worker.outbox import Outbox, Result
from worker.resources import Gpu
from worker.runner import ChildProcess, Evaluation, Outcome

log = logging.getLogger("morphml.worker")

StartEvaluation = Callable[[Path, dict[str, Any], dict[str, str]], Evaluation]
# Keys of an evaluator's report that travel as heartbeat fields rather than as metrics.
REPORT_FIELDS = ("progress", "step")
DELIVERY_SECONDS = 30.0


def start_child(task_dir: Path, spec: dict[str, Any], env: dict[str, str]) -> Evaluation:
    return ChildProcess(task_dir, spec, env).start()


@dataclass(frozen=True)
class Slot:
    """One evaluation at a time, on one GPU (or none) with `threads` CPU threads."""

    number: int
    gpu: Gpu | None
    threads: int

    def __str__(self) -> str:
        return f"slot {self.number}" + (f" (gpu {self.gpu.index})" if self.gpu else " (cpu)")


class Shutdown:
    """The agent's two-stage stop, as every task run sees it.

    `stopping`: no new tasks; running ones may finish until `grace_deadline`. `aborting`: the
    agent exits now, children are killed and nothing waits any more.
    """

    def __init__(self) -> None:
        self.stopping = threading.Event()
        self.aborting = threading.Event()
        self.grace_deadline = float("inf")


class Running:
    """The evaluations in progress, by task id, so that an abort can kill them all at once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_task: dict[str, Evaluation] = {}

    def add(self, task_id: str, evaluation: Evaluation) -> None:
        with self._lock:
            self._by_task[task_id] = evaluation

    def remove(self, task_id: str) -> None:
        with self._lock:
            self._by_task.pop(task_id, None)

    def kill_all(self) -> None:
        with self._lock:
            running = list(self._by_task.values())
        for evaluation in running:
            evaluation.kill_now()

    def __len__(self) -> int:
        with self._lock:
            return len(self._by_task)


@dataclass(frozen=True)
class RunContext:
    """What every task run shares with the agent that claimed it."""

    settings: WorkerSettings
    api: ServerApi
    outbox: Outbox
    start_evaluation: StartEvaluation
    shutdown: Shutdown
    running: Running
    poll_interval: float
    min_heartbeat_gap: float
    delivery_seconds: float


class TaskRun:
    """One claimed task on one slot, from its child's start to its reported result."""

    def __init__(self, task: dict[str, Any], slot: Slot, context: RunContext) -> None:
        self.task = task
        self.slot = slot
        self.context = context

    def run(self) -> Outcome:
        """Evaluate, report, log one line; the outcome is returned for the caller's interest."""
        started = time.monotonic()
        task = self.task
        # The INFO line comes when the task ends; this one is for following a run live.
        log.debug(
            "task %s claimed on %s (%s)", task["id"], self.slot, task["evaluator"].get("kind")
        )
        if self.context.shutdown.stopping.is_set():
            outcome = Outcome(error="the worker is shutting down", retryable=True)
        else:
            try:
                outcome = self._evaluate()
            except Exception as exc:  # e.g. a task body this agent version does not understand
                log.exception("task %s: the agent failed to run it", task.get("id"))
                outcome = Outcome(
                    error=f"worker error: {type(exc).__name__}: {exc}", retryable=True
                )
        if outcome.dropped is None:
            self._report(outcome)
        log.info("%s", task_line(self.slot, task, outcome, time.monotonic() - started))
        return outcome

    def _evaluate(self) -> Outcome:
        task, context = self.task, self.context
        task_dir = context.settings.work_dir / "tasks" / f"{task['id']}-{task.get('attempt', 0)}"
        spec = {
            "architecture": task["candidate"]["architecture"],
            "budget": task.get("budget"),
            "evaluator": task["evaluator"],
        }
        try:
            evaluation = context.start_evaluation(
                task_dir, spec, child_env(self.slot, context.settings.allow)
            )
        except OSError as exc:
            return Outcome(error=f"could not start the evaluation process: {exc}", retryable=True)
        context.running.add(str(task["id"]), evaluation)
        try:
            return self._supervise(evaluation)
        finally:
            evaluation.stop()
            context.running.remove(str(task["id"]))
            shutil.rmtree(task_dir, ignore_errors=True)

    # -- supervising the child ------------------------------------------------------------------

    def _supervise(self, evaluation: Evaluation) -> Outcome:
        """How the evaluation ended, or why it was dropped (stop, lease lost)."""
        shutdown = self.context.shutdown
        started = time.monotonic()
        interval = float(self.task.get("lease_seconds") or 60) / 3
        last_beat, latest = started, dict[str, float]()
        timeout = self._timeout()
        while True:
            outcome = evaluation.poll()
            if outcome is not None:
                return outcome
            reports = evaluation.read_reports()
            latest = reports[-1] if reports else latest
            now = time.monotonic()
            if now >= shutdown.grace_deadline or shutdown.aborting.is_set():
                return Outcome(
                    error="the worker shut down before the task finished", retryable=True
                )
            if timeout is not None and now - started > timeout:
                # A hang or a too-slow candidate: another attempt would most likely hang as well.
                return Outcome(error=f"timed out after {timeout:.0f}s", retryable=False)
            if now - last_beat >= interval or (
                reports and now - last_beat >= self.context.min_heartbeat_gap
            ):
                dropped = self._heartbeat(latest, deadline=now + interval)
                if dropped is not None:
                    return Outcome(dropped=dropped)
                last_beat = now
            shutdown.aborting.wait(self.context.poll_interval)

    def _timeout(self) -> float | None:
        params = self.task["evaluator"].get("params") or {}
        value = params.get("timeout_seconds") or self.context.settings.task_timeout_seconds
        return float(value) if value else None

    def _heartbeat(self, latest: dict[str, float], *, deadline: float) -> str | None:
        """None to keep going, else why the server wants the task dropped."""
        task = self.task
        metrics = {k: v for k, v in latest.items() if k not in REPORT_FIELDS}
        step = latest.get("step")
        body = {
            "lease_token": task["lease_token"],
            "progress": latest.get("progress"),
            "step": int(step) if step is not None else None,
            "metrics": metrics or None,
        }
        try:
            answer = self.context.api.heartbeat(task["id"], body, deadline=deadline)
        except LeaseLost as exc:
            return f"lease lost ({exc})"
        except (Unreachable, ApiError) as exc:
            log.warning("task %s: heartbeat failed: %s", task["id"], exc)
            return None
        if answer.get("action") == "stop":
            return f"stopped by the server ({answer.get('reason') or 'no reason given'})"
        return None

    # -- the result -----------------------------------------------------------------------------

    def _report(self, outcome: Outcome) -> None:
        task, context = self.task, self.context
        token = task["lease_token"]
        if outcome.metrics is not None:
            body: dict[str, Any] = {"lease_token": token, "metrics": outcome.metrics}
            result = Result(str(task["id"]), "complete", body)
        else:
            error = (outcome.error or "unknown error").replace("\x00", "")
            body = {"lease_token": token, "error": error, "retryable": outcome.retryable}
            result = Result(str(task["id"]), "fail", body)
        context.outbox.put(result)  # on disk before the first attempt: a crash now loses nothing
        deadline = time.monotonic() + context.delivery_seconds
        shutdown = context.shutdown
        if shutdown.stopping.is_set():
            # Shutting down: the result is safe on disk, so do not hold the exit for long.
            deadline = min(deadline, max(shutdown.grace_deadline, time.monotonic()) + 5)
        context.outbox.deliver(context.api, result, deadline=deadline)


def child_env(slot: Slot, allow: list[str]) -> dict[str, str]:
    """The child's environment: its GPU and thread count, the allow list, and not our secrets."""
    # The worker's own settings (its token above all) are not the evaluated code's business.
    env = {k: v for k, v in os.environ.items() if not k.startswith("MORPHML_WORKER_")}
    threads = str(slot.threads)
    env.update(
        CUDA_VISIBLE_DEVICES=str(slot.gpu.index) if slot.gpu else "",
        CUDA_DEVICE_ORDER="PCI_BUS_ID",  # NVML's numbering, which --gpus uses
        MORPHML_TORCH_THREADS=threads,
        OMP_NUM_THREADS=threads,
        MKL_NUM_THREADS=threads,
        MORPHML_ALLOW=",".join(allow),
        # The child runs in its task dir; user modules beside the agent's cwd stay importable.
        PYTHONPATH=os.pathsep.join(p for p in (env.get("PYTHONPATH"), os.getcwd()) if p),
    )
    return env


def task_line(slot: Slot, task: dict[str, Any], outcome: Outcome, seconds: float) -> str:
    """The one INFO line a task leaves in the agent's log."""
    head = (
        f"task {task['id']} (experiment {task.get('experiment_id')}, "
        f"attempt {task.get('attempt')}, {slot})"
    )
    if outcome.dropped is not None:
        return f"{head} dropped after {seconds:.1f}s: {outcome.dropped}"
    if outcome.metrics is not None:
        shown = " ".join(f"{k}={v:.4g}" for k, v in list(outcome.metrics.items())[:5])
        return f"{head} completed in {seconds:.1f}s: {shown}"
    kind = "retryable" if outcome.retryable else "final"
    first_line = (outcome.error or "").splitlines()[0] if outcome.error else "unknown error"
    return f"{head} failed ({kind}) after {seconds:.1f}s: {first_line}"
