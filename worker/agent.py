"""The agent: register, then one loop per slot (claim -> evaluate in a child -> report).

Threads, not processes, run the slots: they spend their time waiting on HTTP and on children.
Shutdown is two-staged: `request_stop()` stops claiming and starts the grace period, after which
running children are stopped and their tasks failed as retryable; `abort()` kills at once.
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

import httpx

from worker.config import WorkerSettings
from worker.http import ApiError, Backoff, LeaseLost, ServerApi, Unreachable
from worker.outbox import Outbox, Result, WorkDirLock
from worker.resources import Gpu, free_gpu_memory_mb
from worker.runner import ChildProcess, Evaluation, Outcome

log = logging.getLogger("morphml.worker")

StartEvaluation = Callable[[Path, dict[str, Any], dict[str, str]], Evaluation]
# Keys of an evaluator's report that travel as heartbeat fields rather than as metrics.
REPORT_FIELDS = ("progress", "step")
DELIVERY_SECONDS = 30.0
OUTBOX_FLUSH_SECONDS = 30.0


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


def plan_slots(
    gpus: list[Gpu], cpus: int, slots: int | None, threads: int | None = None
) -> list[Slot]:
    """`slots` per GPU, or `slots` CPU slots; CPU threads split evenly between all slots.

    Several single-thread trainings beat one multi-thread training on small models (about 1.4x
    models per hour for two on two cores), so threads are shared rather than oversubscribed.
    `threads` (MORPHML_TORCH_THREADS in the agent's environment) overrides the split, e.g.
    for several agents sharing one machine.
    """
    per_unit = slots or 1
    units: list[Gpu | None] = [gpu for gpu in gpus for _ in range(per_unit)] if gpus else []
    units = units or [None] * per_unit
    threads = threads or max(1, cpus // len(units))
    return [Slot(number, gpu, threads) for number, gpu in enumerate(units)]


class Agent:
    """The worker agent; handed its `httpx.Client` (base URL and token set) by the caller."""

    def __init__(
        self,
        client: httpx.Client,
        settings: WorkerSettings,
        *,
        resources: dict[str, Any],
        gpus: list[Gpu],
        start_evaluation: StartEvaluation = start_child,
        backoff: Backoff | None = None,
        free_memory: Callable[[Gpu], int | None] = free_gpu_memory_mb,
        poll_interval: float = 0.2,
        min_heartbeat_gap: float = 1.0,
    ) -> None:
        self.settings = settings
        self.resources = resources
        self.slots = plan_slots(gpus, int(resources["cpus"]), settings.slots, _threads_from_env())
        self.start_evaluation = start_evaluation
        self.free_memory = free_memory
        self.poll_interval = poll_interval
        self.min_heartbeat_gap = min_heartbeat_gap
        self.stopping = threading.Event()
        self.aborting = threading.Event()
        self.grace_deadline = float("inf")
        self.api = ServerApi(client, backoff=backoff, interrupt=self.aborting)
        self.outbox = Outbox(settings.work_dir / "outbox")
        self.worker_id: Any = None  # as the server gave it (an int today)
        self._running: dict[str, Evaluation] = {}
        self._lock = threading.Lock()
        self._next_flush = 0.0
        # Pause after an empty claim that came back early (poll_seconds 0, a server that does
        # not long-poll): the loop must never hammer the server.
        self.idle_pause = 1.0
        self.delivery_seconds = DELIVERY_SECONDS

    # -- lifecycle ------------------------------------------------------------------------------

    def run(self) -> int:
        """Serve until stopped; 0 after a clean shutdown, 2 when the server refuses us."""
        with WorkDirLock(self.settings.work_dir):
            self._log_summary()
            try:
                self.worker_id = self._register()
            except (ApiError, LeaseLost) as exc:
                log.error("the server refused registration: %s", exc)
                return 2
            if self.worker_id is None:
                return 0
            self.flush_outbox()
            self._serve_slots()
        log.info("stopped")
        return 0

    def request_stop(self) -> None:
        """Stop claiming; running tasks get `grace_seconds` to finish, then fail as retryable."""
        if not self.stopping.is_set():
            self.grace_deadline = time.monotonic() + self.settings.grace_seconds
            self.stopping.set()
            log.info(
                "stopping: no new tasks; %.0fs grace for running ones", self.settings.grace_seconds
            )

    def abort(self) -> None:
        """Kill every child now (second signal); the caller exits the process."""
        self.aborting.set()
        self.stopping.set()
        with self._lock:
            running = list(self._running.values())
        for evaluation in running:
            evaluation.kill_now()

    def _serve_slots(self) -> None:
        threads = [
            threading.Thread(target=self._slot_loop, args=(slot,), name=str(slot), daemon=True)
            for slot in self.slots
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            # join() in short steps so the main thread keeps handling signals.
            while thread.is_alive():
                thread.join(0.5)

    def _register(self) -> Any:
        body = {
            "name": self.settings.name,
            "host": self.resources["host"],
            "resources": {k: self.resources[k] for k in ("cpus", "memory_mb", "gpus")},
            "labels": self.settings.labels,
        }
        try:
            worker_id = self.api.register(body, stop=self.stopping)
        except Unreachable:
            return None
        log.info("registered with %s as worker %s", self.settings.server, worker_id)
        return worker_id

    def _log_summary(self) -> None:
        gpus = ", ".join(
            f"{g['index']}:{g['name']} {g['memory_mb']} MiB" for g in self.resources["gpus"]
        )
        log.info(
            "morphml-worker %s -> %s: %d CPUs, %d MiB, GPUs: %s; %d slot(s) x %d thread(s); "
            "allow: %s; work dir %s",
            self.settings.name, self.settings.server, self.resources["cpus"],
            self.resources["memory_mb"], gpus or "none", len(self.slots), self.slots[0].threads,
            ",".join(self.settings.allow) or "-", self.settings.work_dir,
        )  # fmt: skip

    # -- one slot -------------------------------------------------------------------------------

    def _slot_loop(self, slot: Slot) -> None:
        while not self.stopping.is_set():
            try:
                self._slot_step(slot)
            except Exception:  # a bug must cost one iteration, not the slot
                log.exception("%s: unexpected error; carrying on", slot)
                self.stopping.wait(self.idle_pause)

    def _slot_step(self, slot: Slot) -> None:
        if time.monotonic() >= self._next_flush:
            self.flush_outbox()
        asked = time.monotonic()
        task = self._claim(slot)
        if task is not None:
            self._run_task(slot, task)
        elif time.monotonic() - asked < self.idle_pause:
            self.stopping.wait(self.idle_pause)

    def _claim(self, slot: Slot) -> dict[str, Any] | None:
        body = {
            "worker_id": self.worker_id,
            "wait_seconds": self.settings.poll_seconds,
            "free": self._free(slot),
            "labels": self.settings.labels,
        }
        try:
            return self.api.claim(body, stop=self.stopping)
        except Unreachable:
            return None
        except LeaseLost:
            # 404: the server does not know this worker (e.g. its database was reset).
            log.warning(
                "%s: the server does not know worker %s; registering again", slot, self.worker_id
            )
            self.worker_id = self._register() or self.worker_id
            return None
        except ApiError as exc:
            # Not fixable by retrying at once; pause so a misconfiguration is not a tight loop.
            log.error("%s: claim refused: %s", slot, exc)
            self.stopping.wait(self.api.backoff.cap)
            return None

    def _free(self, slot: Slot) -> dict[str, int]:
        """What the slot offers now; a GPU whose memory cannot be read offers nothing."""
        free_mb = self.free_memory(slot.gpu) if slot.gpu else None
        if free_mb is None:
            return {"gpus": 0, "gpu_memory_mb": 0}
        return {"gpus": 1, "gpu_memory_mb": free_mb}

    def _run_task(self, slot: Slot, task: dict[str, Any]) -> None:
        started = time.monotonic()
        # The INFO line comes when the task ends; this one is for following a run live.
        log.debug("task %s claimed on %s (%s)", task["id"], slot, task["evaluator"].get("kind"))
        if self.stopping.is_set():
            outcome = Outcome(error="the worker is shutting down", retryable=True)
        else:
            try:
                outcome = self._evaluate(slot, task)
            except Exception as exc:  # e.g. a task body this agent version does not understand
                log.exception("task %s: the agent failed to run it", task.get("id"))
                outcome = Outcome(
                    error=f"worker error: {type(exc).__name__}: {exc}", retryable=True
                )
        if outcome.dropped is None:
            self._report(task, outcome)
        log.info("%s", _task_line(slot, task, outcome, time.monotonic() - started))

    def _evaluate(self, slot: Slot, task: dict[str, Any]) -> Outcome:
        task_dir = self.settings.work_dir / "tasks" / f"{task['id']}-{task.get('attempt', 0)}"
        spec = {
            "architecture": task["candidate"]["architecture"],
            "budget": task.get("budget"),
            "evaluator": task["evaluator"],
        }
        try:
            evaluation = self.start_evaluation(task_dir, spec, self._child_env(slot))
        except OSError as exc:
            return Outcome(error=f"could not start the evaluation process: {exc}", retryable=True)
        with self._lock:
            self._running[str(task["id"])] = evaluation
        try:
            return self._supervise(task, evaluation)
        finally:
            evaluation.stop()
            with self._lock:
                self._running.pop(str(task["id"]), None)
            shutil.rmtree(task_dir, ignore_errors=True)

    def _child_env(self, slot: Slot) -> dict[str, str]:
        # The worker's own settings (its token above all) are not the evaluated code's business.
        env = {k: v for k, v in os.environ.items() if not k.startswith("MORPHML_WORKER_")}
        threads = str(slot.threads)
        env.update(
            CUDA_VISIBLE_DEVICES=str(slot.gpu.index) if slot.gpu else "",
            CUDA_DEVICE_ORDER="PCI_BUS_ID",  # NVML's numbering, which --gpus uses
            MORPHML_TORCH_THREADS=threads,
            OMP_NUM_THREADS=threads,
            MKL_NUM_THREADS=threads,
            MORPHML_ALLOW=",".join(self.settings.allow),
            # The child runs in its task dir; user modules beside the agent's cwd stay importable.
            PYTHONPATH=os.pathsep.join(p for p in (env.get("PYTHONPATH"), os.getcwd()) if p),
        )
        return env

    # -- supervising a child --------------------------------------------------------------------

    def _supervise(self, task: dict[str, Any], evaluation: Evaluation) -> Outcome:
        """How the evaluation ended, or why it was dropped (stop, lease lost)."""
        started = time.monotonic()
        interval = float(task.get("lease_seconds") or 60) / 3
        last_beat, latest = started, dict[str, float]()
        timeout = self._timeout(task)
        while True:
            outcome = evaluation.poll()
            if outcome is not None:
                return outcome
            reports = evaluation.read_reports()
            latest = reports[-1] if reports else latest
            now = time.monotonic()
            if now >= self.grace_deadline or self.aborting.is_set():
                return Outcome(
                    error="the worker shut down before the task finished", retryable=True
                )
            if timeout is not None and now - started > timeout:
                # A hang or a too-slow candidate: another attempt would most likely hang as well.
                return Outcome(error=f"timed out after {timeout:.0f}s", retryable=False)
            if now - last_beat >= interval or (
                reports and now - last_beat >= self.min_heartbeat_gap
            ):
                dropped = self._heartbeat(task, latest, deadline=now + interval)
                if dropped is not None:
                    return Outcome(dropped=dropped)
                last_beat = now
            self.aborting.wait(self.poll_interval)

    def _timeout(self, task: dict[str, Any]) -> float | None:
        params = task["evaluator"].get("params") or {}
        value = params.get("timeout_seconds") or self.settings.task_timeout_seconds
        return float(value) if value else None

    def _heartbeat(
        self, task: dict[str, Any], latest: dict[str, float], *, deadline: float
    ) -> str | None:
        """None to keep going, else why the server wants the task dropped."""
        metrics = {k: v for k, v in latest.items() if k not in REPORT_FIELDS}
        step = latest.get("step")
        body = {
            "lease_token": task["lease_token"],
            "progress": latest.get("progress"),
            "step": int(step) if step is not None else None,
            "metrics": metrics or None,
        }
        try:
            answer = self.api.heartbeat(task["id"], body, deadline=deadline)
        except LeaseLost as exc:
            return f"lease lost ({exc})"
        except (Unreachable, ApiError) as exc:
            log.warning("task %s: heartbeat failed: %s", task["id"], exc)
            return None
        if answer.get("action") == "stop":
            return f"stopped by the server ({answer.get('reason') or 'no reason given'})"
        return None

    # -- results --------------------------------------------------------------------------------

    def _report(self, task: dict[str, Any], outcome: Outcome) -> None:
        token = task["lease_token"]
        if outcome.metrics is not None:
            body: dict[str, Any] = {"lease_token": token, "metrics": outcome.metrics}
            result = Result(str(task["id"]), "complete", body)
        else:
            error = (outcome.error or "unknown error").replace("\x00", "")
            body = {"lease_token": token, "error": error, "retryable": outcome.retryable}
            result = Result(str(task["id"]), "fail", body)
        self.outbox.put(result)  # on disk before the first attempt: a crash now loses nothing
        deadline = time.monotonic() + self.delivery_seconds
        if self.stopping.is_set():
            # Shutting down: the result is safe on disk, so do not hold the exit for long.
            deadline = min(deadline, max(self.grace_deadline, time.monotonic()) + 5)
        self.outbox.deliver(self.api, result, deadline=deadline)

    def flush_outbox(self) -> None:
        """Re-post what a previous run (or a network blip) left unacknowledged."""
        self._next_flush = time.monotonic() + OUTBOX_FLUSH_SECONDS
        self.outbox.flush(self.api, interrupt=self.aborting)


def _threads_from_env() -> int | None:
    value = os.environ.get("MORPHML_TORCH_THREADS", "")
    return int(value) if value.isdigit() and int(value) > 0 else None


def _task_line(slot: Slot, task: dict[str, Any], outcome: Outcome, seconds: float) -> str:
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
