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

from pydantic import ValidationError

from morphml.wire import (
    ClaimedTask,
    CompleteRequest,
    FailRequest,
    HeartbeatRequest,
    first_problem,
)
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
# FailRequest.error's bound; a longer error would be refused whole rather than cut.
MAX_ERROR_CHARS = 20_000


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
        self._by_task: dict[int, Evaluation] = {}

    def add(self, task_id: int, evaluation: Evaluation) -> None:
        with self._lock:
            self._by_task[task_id] = evaluation

    def remove(self, task_id: int) -> None:
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

    def __init__(self, task: ClaimedTask, slot: Slot, context: RunContext) -> None:
        self.task = task
        self.slot = slot
        self.context = context

    def run(self) -> Outcome:
        """Evaluate, report, log one line; the outcome is returned for the caller's interest."""
        started = time.monotonic()
        task = self.task
        # The INFO line comes when the task ends; this one is for following a run live.
        log.debug("task %d claimed on %s (%s)", task.id, self.slot, task.evaluator.kind)
        if self.context.shutdown.stopping.is_set():
            outcome = Outcome(error="the worker is shutting down", retryable=True)
        else:
            try:
                outcome = self._evaluate()
            except Exception as exc:  # e.g. a task body this agent version does not understand
                log.exception("task %d: the agent failed to run it", task.id)
                outcome = Outcome(
                    error=f"worker error: {type(exc).__name__}: {exc}", retryable=True
                )
        if outcome.dropped is None:
            self._report(outcome)
        log.info("%s", task_line(self.slot, task, outcome, time.monotonic() - started))
        return outcome

    def _evaluate(self) -> Outcome:
        task, context = self.task, self.context
        # Both parts are integers (the wire model says so): the directory stays under tasks/.
        task_dir = context.settings.work_dir / "tasks" / f"{task.id}-{task.attempt}"
        spec = {
            # The candidate is the optimizer's JSON (`Candidate.to_dict`), not a wire model.
            "architecture": task.candidate["architecture"],
            "budget": task.budget,
            "evaluator": task.evaluator.model_dump(mode="json"),
        }
        try:
            evaluation = context.start_evaluation(
                task_dir, spec, child_env(self.slot, context.settings.allow)
            )
        except OSError as exc:
            return Outcome(error=f"could not start the evaluation process: {exc}", retryable=True)
        context.running.add(task.id, evaluation)
        try:
            return self._supervise(evaluation)
        finally:
            evaluation.stop()
            context.running.remove(task.id)
            shutil.rmtree(task_dir, ignore_errors=True)

    # -- supervising the child ------------------------------------------------------------------

    def _supervise(self, evaluation: Evaluation) -> Outcome:
        """How the evaluation ended, or why it was dropped (stop, lease lost)."""
        shutdown = self.context.shutdown
        started = time.monotonic()
        interval = (self.task.lease_seconds or 60) / 3
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
        value = (
            self.task.evaluator.params.get("timeout_seconds")
            or self.context.settings.task_timeout_seconds
        )
        return float(value) if value else None

    def _heartbeat(self, latest: dict[str, float], *, deadline: float) -> str | None:
        """None to keep going, else why the server wants the task dropped."""
        task = self.task
        try:
            answer = self.context.api.heartbeat(task.id, self._beat(latest), deadline=deadline)
        except LeaseLost as exc:
            return f"lease lost ({exc})"
        except (Unreachable, ApiError) as exc:
            log.warning("task %d: heartbeat failed: %s", task.id, exc)
            return None
        if answer.action == "stop":
            return f"stopped by the server ({answer.reason or 'no reason given'})"
        return None

    def _beat(self, latest: dict[str, float]) -> HeartbeatRequest:
        """The heartbeat carrying the latest report; without it when the report does not fit
        the contract (a negative step, a 300-character metric name): the lease matters more."""
        metrics = {k: v for k, v in latest.items() if k not in REPORT_FIELDS}
        step = latest.get("step")
        try:
            return HeartbeatRequest(
                lease_token=self.task.lease_token,
                progress=latest.get("progress"),
                step=int(step) if step is not None else None,
                metrics=metrics or None,
            )
        except ValidationError as exc:
            log.warning("task %d: report not sent: %s", self.task.id, first_problem(exc))
            return HeartbeatRequest(lease_token=self.task.lease_token)

    # -- the result -----------------------------------------------------------------------------

    def _report(self, outcome: Outcome) -> None:
        context = self.context
        result = self._result(outcome)
        context.outbox.put(result)  # on disk before the first attempt: a crash now loses nothing
        deadline = time.monotonic() + context.delivery_seconds
        shutdown = context.shutdown
        if shutdown.stopping.is_set():
            # Shutting down: the result is safe on disk, so do not hold the exit for long.
            deadline = min(deadline, max(shutdown.grace_deadline, time.monotonic()) + 5)
        context.outbox.deliver(context.api, result, deadline=deadline)

    def _result(self, outcome: Outcome) -> Result:
        token = self.task.lease_token
        if outcome.metrics is not None:
            try:
                complete = CompleteRequest(lease_token=token, metrics=outcome.metrics)
                return Result(self.task.id, "complete", complete.model_dump(mode="json"))
            except ValidationError as exc:
                # The server would refuse it (422): the task would wait out its lease, then be
                # retried until its attempts ran out, each time with the same result.
                error = f"the metrics do not fit the API: {first_problem(exc)}"
                outcome = Outcome(error=error, retryable=False)
        error = (outcome.error or "unknown error").replace("\x00", "")[:MAX_ERROR_CHARS]
        fail = FailRequest(lease_token=token, error=error, retryable=outcome.retryable)
        return Result(self.task.id, "fail", fail.model_dump(mode="json"))


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


def task_line(slot: Slot, task: ClaimedTask, outcome: Outcome, seconds: float) -> str:
    """The one INFO line a task leaves in the agent's log."""
    head = f"task {task.id} (experiment {task.experiment_id}, attempt {task.attempt}, {slot})"
    if outcome.dropped is not None:
        return f"{head} dropped after {seconds:.1f}s: {outcome.dropped}"
    if outcome.metrics is not None:
        shown = " ".join(f"{k}={v:.4g}" for k, v in list(outcome.metrics.items())[:5])
        return f"{head} completed in {seconds:.1f}s: {shown}"
    kind = "retryable" if outcome.retryable else "final"
    first_line = (outcome.error or "").splitlines()[0] if outcome.error else "unknown error"
    return f"{head} failed ({kind}) after {seconds:.1f}s: {first_line}"
