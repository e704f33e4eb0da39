"""One claimed task's life on a slot: start its child, supervise it, heartbeat, report the result.

The agent claims a task and hands it to a `TaskRun`; the run owns it from then on. It ends the
task one of three ways: a result (metrics or an error) kept in the outbox and posted, or nothing
reported when the lease is gone or the server said stop (`Outcome.dropped`).

A failure of this machine rather than of the candidate (the task dir or `spec.json` cannot be
written, the child cannot start, the child died and the work dir turns out unusable, the outbox
refuses the result) is told to `worker.health` and, for the task, reported as an environment
failure (`FailReport.environment`) so that it does not cost the task an attempt.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from morphml.wire import ClaimedTask, HeartbeatRequest, NextClaim, first_problem
from worker.artifact_outbox import ArtifactOutbox
from worker.claims import Handed
from worker.config import WorkerSettings
from worker.health import Health
from worker.http import ApiError, LeaseLost, ServerApi, Unreachable
from worker.outbox import Outbox, Result, clean_text
from worker.resources import Gpu
from worker.runner import Evaluation, Outcome, start_fresh
from worker.task_artifacts import TaskArtifacts
from worker.timings import Overheads

log = logging.getLogger("morphml.worker")

StartEvaluation = Callable[[Path, dict[str, Any], dict[str, str]], Evaluation]
# The claim a completion carries for its slot's next task; None: complete without claiming.
NextClaimFor = Callable[["Slot"], NextClaim | None]
# Keys of an evaluator's report that travel as heartbeat fields rather than as metrics.
REPORT_FIELDS = ("progress", "step")
DELIVERY_SECONDS = 30.0


def start_child(task_dir: Path, spec: dict[str, Any], env: dict[str, str]) -> Evaluation:
    """A fresh process for one task (tests; the agent keeps a warm one per slot)."""
    return start_fresh(task_dir, spec, env)


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
    health: Health
    start_evaluation: StartEvaluation
    shutdown: Shutdown
    running: Running
    poll_interval: float
    min_heartbeat_gap: float
    delivery_seconds: float
    overheads: Overheads
    next_claim: NextClaimFor
    artifacts: ArtifactOutbox


class TaskRun:
    """One claimed task on one slot, from its child's start to its reported result."""

    def __init__(self, handed: Handed, slot: Slot, context: RunContext) -> None:
        self.task = handed.task
        self.slot = slot
        self.context = context
        self.started = False  # the child started
        self.failed_here = False  # a local failure (disk, process start) happened on the way
        # Agent overhead: claim answered -> evaluation handed over, result in hand -> posted.
        self.received = handed.received
        self.handed_over: float | None = None
        self.result_at: float | None = None
        # The slot's next tasks, when the completion claimed them (claim-on-complete).
        self.next_tasks: list[ClaimedTask] = []
        self.next_received = 0.0

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
        if self.started and not self.failed_here:
            self.context.health.success()
        log.info("%s", task_line(self.slot, task, outcome, time.monotonic() - started))
        return outcome

    def _evaluate(self) -> Outcome:
        task, context = self.task, self.context
        # Built from integers only (the wire model parsed them): it stays under tasks/.
        task_dir = context.settings.work_dir / "tasks" / f"{int(task.id)}-{int(task.attempt)}"
        spec = {
            # The candidate is the optimizer's JSON (`Candidate.to_dict`), not a wire model.
            "architecture": task.candidate["architecture"],
            "budget": task.budget,
            "evaluator": task.evaluator.model_dump(mode="json"),
            # The optimizer's bookkeeping, for evaluators that act on it (`context.meta()`).
            "meta": task.candidate.get("meta") or {},
        }
        artifacts = TaskArtifacts(context.api, context.artifacts, task, task_dir)
        spec.update(artifacts.fetch_inputs())  # a resumed attempt's checkpoint, a warm start
        try:
            evaluation = context.start_evaluation(
                task_dir, spec, child_env(self.slot, context.settings.allow)
            )
        except OSError as exc:  # the task dir, spec.json or child.log cannot be written, or fork
            error = f"this worker could not start the evaluation: {exc}"
            self._failed_here(f"task {task.id}: {error}", exc)
            return Outcome(error=error, retryable=True, environment=True)
        self.started = True
        self.handed_over = time.monotonic()
        context.running.add(task.id, evaluation)
        try:
            outcome = self._supervise(evaluation, artifacts)
            self.result_at = time.monotonic()
            evaluation.stop()  # a child still running (timeout, shutdown) is done with
            artifacts.take(evaluation.read_saved())
            artifacts.finish(outcome)  # final weights up before the result is posted
            return outcome
        finally:
            artifacts.close()
            evaluation.stop()
            context.running.remove(task.id)
            shutil.rmtree(task_dir, ignore_errors=True)

    # -- supervising the child ------------------------------------------------------------------

    def _supervise(self, evaluation: Evaluation, artifacts: TaskArtifacts) -> Outcome:
        """How the evaluation ended, or why it was dropped (stop, lease lost)."""
        shutdown = self.context.shutdown
        started = time.monotonic()
        interval = (self.task.lease_seconds or 60) / 3
        last_beat, latest = started, dict[str, float]()
        # The first report goes at once, later ones at most every `min_heartbeat_gap`: a task
        # of a second (a warm process training a small model) still shows its curve, and the
        # pruners get its first step.
        reported = False
        timeout = self._timeout()
        while True:
            outcome = evaluation.poll()
            if outcome is not None:
                return self._check_machine(outcome)
            reports = evaluation.read_reports()
            latest = reports[-1] if reports else latest
            artifacts.take(evaluation.read_saved())  # checkpoints go up in the background
            now = time.monotonic()
            if now >= shutdown.grace_deadline or shutdown.aborting.is_set():
                return Outcome(
                    error="the worker shut down before the task finished", retryable=True
                )
            if timeout is not None and now - started > timeout:
                # A hang or a too-slow candidate: another attempt would most likely hang as well.
                return Outcome(error=f"timed out after {timeout:.0f}s", retryable=False)
            if now - last_beat >= interval or (
                reports and (not reported or now - last_beat >= self.context.min_heartbeat_gap)
            ):
                dropped = self._heartbeat(latest, deadline=now + interval)
                if dropped is not None:
                    return Outcome(dropped=dropped)
                last_beat, reported = now, reported or bool(reports)
            # Wakes as soon as the child answers (an abort kills it, which wakes us too).
            evaluation.wait(self.context.poll_interval)

    def _check_machine(self, outcome: Outcome) -> Outcome:
        """A child that failed retryably may have met a full or read-only disk (it could not
        write its result, say): when the work dir fails the health probe, the failure is this
        machine's, not the candidate's."""
        if outcome.metrics is not None or not outcome.retryable:
            return outcome
        problem = self.context.health.check()
        if problem is None:
            return outcome
        reason = f"task {self.task.id}: its evaluation failed, and this machine cannot run tasks"
        self._failed_here(f"{reason}: {problem}", problem)
        error = f"{outcome.error}\n(this worker's machine cannot run tasks: {problem})"
        return replace(outcome, error=error, environment=True)

    def _failed_here(self, reason: str, error: OSError) -> None:
        """Log a local failure; the first one of this task counts towards the breaker."""
        log.error("%s", reason)
        if not self.failed_here:
            self.failed_here = True
            self.context.health.failure(reason, error)

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
        result = replace(self._result(outcome), credential=context.api.credential)
        try:
            context.outbox.put(result)  # on disk before the first post: a crash now loses nothing
        except OSError as exc:
            # The outbox is a safety net, not a precondition: post the result all the same.
            self._failed_here(
                f"task {self.task.id}: the outbox cannot keep its result ({exc}); posting it "
                "directly (it is lost if the agent stops before the server acknowledges it)",
                exc,
            )
        deadline = time.monotonic() + context.delivery_seconds
        shutdown = context.shutdown
        if shutdown.stopping.is_set():
            # Shutting down: the result is safe on disk, so do not hold the exit for long.
            deadline = min(deadline, max(shutdown.grace_deadline, time.monotonic()) + 5)
        claim = context.next_claim(self.slot) if result.outcome == "complete" else None
        self._count_overhead()
        delivery = context.outbox.deliver(context.api, result, deadline=deadline, claim=claim)
        self.next_tasks, self.next_received = delivery.claimed, time.monotonic()

    def _count_overhead(self) -> None:
        if self.handed_over is not None and self.result_at is not None:
            before = self.handed_over - self.received
            self.context.overheads.add(before + time.monotonic() - self.result_at)

    def _result(self, outcome: Outcome) -> Result:
        task, token = self.task, self.task.lease_token
        if outcome.metrics is not None:
            return Result.complete(task.id, token, outcome.metrics)
        return Result.fail(
            task.id,
            token,
            outcome.error or "unknown error",
            retryable=outcome.retryable,
            environment=outcome.environment,
        )


def child_env(slot: Slot, allow: list[str]) -> dict[str, str]:
    """The child's environment: its GPU and thread count, the allow list, and not our secrets.

    Its import path is the installed packages plus what the operator put on `PYTHONPATH`, and
    nothing else: not the agent's working directory (a `sitecustomize.py` there would run in
    every evaluation, outside `--allow`), nor the task dir the child runs in (`PYTHONSAFEPATH`).
    """
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
        PYTHONSAFEPATH="1",  # no script or working directory in front of sys.path, down the tree
    )
    # What the operator configured, meant from where the agent started (the child runs in its
    # task dir); an empty entry, which would mean "the current directory", is dropped.
    entries = [os.path.abspath(p) for p in env.pop("PYTHONPATH", "").split(os.pathsep) if p]
    if entries:
        env["PYTHONPATH"] = os.pathsep.join(entries)
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
    kind += ", this machine's fault" if outcome.environment else ""
    error = clean_text(outcome.error or "")
    first_line = error.splitlines()[0] if error.strip() else "unknown error"
    return f"{head} failed ({kind}) after {seconds:.1f}s: {first_line}"
