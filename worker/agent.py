"""The agent: register, then one loop per slot (claim -> hand the task to a `TaskRun`).

Threads, not processes, run the slots: they spend their time waiting on HTTP and on children.
A slot claims only while `worker.health` says this machine can run tasks: it checks before the
first claim, and stops claims for a while after a few local failures in a row (a full disk).
Shutdown is two-staged: `request_stop()` stops claiming and starts the grace period, after which
running children are stopped and their tasks failed as retryable; `abort()` kills at once.
What happens to a claimed task (its child, heartbeats, result) is `worker.task_run`'s business.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable

import httpx
from pydantic import ValidationError

from morphml.wire import ClaimedTask, ClaimRequest, FreeResources, WorkerCreate
from worker.config import WorkerSettings
from worker.health import Health
from worker.http import ApiError, Backoff, LeaseLost, ServerApi, Unreachable
from worker.outbox import Outbox, WorkDirLock
from worker.resources import Gpu, Machine, free_gpu_memory_mb
from worker.task_run import (
    DELIVERY_SECONDS,
    RunContext,
    Running,
    Shutdown,
    Slot,
    StartEvaluation,
    TaskRun,
    start_child,
)

log = logging.getLogger("morphml.worker")

OUTBOX_FLUSH_SECONDS = 30.0


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
        machine: Machine,
        start_evaluation: StartEvaluation = start_child,
        backoff: Backoff | None = None,
        free_memory: Callable[[Gpu], int | None] = free_gpu_memory_mb,
        poll_interval: float = 0.2,
        min_heartbeat_gap: float = 1.0,
    ) -> None:
        self.settings = settings
        self.machine = machine
        threads = _threads_from_env()
        self.slots = plan_slots(list(machine.gpus), machine.cpus, settings.slots, threads)
        self.start_evaluation = start_evaluation
        self.free_memory = free_memory
        self.poll_interval = poll_interval
        self.min_heartbeat_gap = min_heartbeat_gap
        self.shutdown = Shutdown()
        self.api = ServerApi(client, backoff=backoff, interrupt=self.shutdown.aborting)
        self.outbox = Outbox(settings.work_dir / "outbox")
        self.health = Health(settings.work_dir)
        self.worker_id: int | None = None
        self._running = Running()
        self._next_flush = 0.0
        # Pause after an empty claim that came back early (poll_seconds 0, a server that does
        # not long-poll): the loop must never hammer the server.
        self.idle_pause = 1.0
        self.delivery_seconds = DELIVERY_SECONDS

    # -- lifecycle ------------------------------------------------------------------------------

    @property
    def stopping(self) -> threading.Event:
        """Set once the agent stops claiming."""
        return self.shutdown.stopping

    @property
    def aborting(self) -> threading.Event:
        """Set when the agent kills its children and exits at once."""
        return self.shutdown.aborting

    def run(self) -> int:
        """Serve until stopped; 0 after a clean shutdown, 2 when the server refuses us."""
        with WorkDirLock(self.settings.work_dir):
            self._log_summary()
            try:
                self.worker_id = self._register()
            except ValidationError as exc:  # e.g. an empty name, a 300-character label
                log.error("this worker's settings do not fit the API: %s", exc)
                return 2
            except (ApiError, LeaseLost) as exc:
                log.error("the server refused registration: %s", exc)
                return 2
            if self.worker_id is None:
                return 0
            try:
                self.flush_outbox()
            except Exception:  # never a reason not to serve: a crash here would repeat each start
                log.exception("flushing the outbox failed; carrying on")
            self._serve_slots()
        log.info("stopped")
        return 0

    def request_stop(self) -> None:
        """Stop claiming; running tasks get `grace_seconds` to finish, then fail as retryable."""
        if not self.stopping.is_set():
            self.shutdown.grace_deadline = time.monotonic() + self.settings.grace_seconds
            self.stopping.set()
            log.info(
                "stopping: no new tasks; %.0fs grace for running ones", self.settings.grace_seconds
            )

    def abort(self) -> None:
        """Kill every child now (second signal); the caller exits the process."""
        self.aborting.set()
        self.stopping.set()
        self._running.kill_all()

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

    def _register(self) -> int | None:
        """The id the server gave this worker; None when stopped before it answered."""
        resources = self.machine.resources().model_copy(update={"slots": len(self.slots)})
        body = WorkerCreate(
            name=self.settings.name,
            host=self.machine.host,
            resources=resources,
            labels=self.settings.labels,
        )
        try:
            worker_id = self.api.register(body, stop=self.stopping)
        except Unreachable:
            return None
        log.info("registered with %s as worker %s", self.settings.server, worker_id)
        return worker_id

    def _log_summary(self) -> None:
        machine = self.machine
        gpus = ", ".join(f"{g.index}:{g.name} {g.memory_mb} MiB" for g in machine.gpus)
        log.info(
            "morphml-worker %s -> %s: %d CPUs, %d MiB, GPUs: %s; %d slot(s) x %d thread(s); "
            "allow: %s; work dir %s",
            self.settings.name, self.settings.server, machine.cpus,
            machine.memory_mb, gpus or "none", len(self.slots), self.slots[0].threads,
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
        pause = self.health.pause_before_claim()
        if pause > 0:  # unhealthy: no claims; results left in the outbox still go out
            self.stopping.wait(min(pause, OUTBOX_FLUSH_SECONDS))
            return
        asked = time.monotonic()
        task = self._claim(slot)
        if task is not None:
            self._run_task(slot, task)
        elif time.monotonic() - asked < self.idle_pause:
            self.stopping.wait(self.idle_pause)

    def _claim(self, slot: Slot) -> ClaimedTask | None:
        assert self.worker_id is not None, "claims come after registration"
        body = ClaimRequest(
            worker_id=self.worker_id,
            wait_seconds=self.settings.poll_seconds,
            free=self._free(slot),
            labels=self.settings.labels,
        )
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
            # A malformed answer lands here too: the task it leased returns to the queue when
            # its lease expires.
            log.error("%s: claim refused: %s", slot, exc)
            self.stopping.wait(self.api.backoff.cap)
            return None

    def _free(self, slot: Slot) -> FreeResources:
        """What the slot offers now; a GPU whose memory cannot be read offers nothing."""
        free_mb = self.free_memory(slot.gpu) if slot.gpu else None
        if free_mb is None:
            return FreeResources(gpus=0, gpu_memory_mb=0)
        return FreeResources(gpus=1, gpu_memory_mb=free_mb)

    def _run_task(self, slot: Slot, task: ClaimedTask) -> None:
        context = RunContext(
            settings=self.settings,
            api=self.api,
            outbox=self.outbox,
            health=self.health,
            start_evaluation=self.start_evaluation,
            shutdown=self.shutdown,
            running=self._running,
            poll_interval=self.poll_interval,
            min_heartbeat_gap=self.min_heartbeat_gap,
            delivery_seconds=self.delivery_seconds,
        )
        TaskRun(task, slot, context).run()

    def flush_outbox(self) -> None:
        """Re-post what a previous run (or a network blip) left unacknowledged."""
        self._next_flush = time.monotonic() + OUTBOX_FLUSH_SECONDS
        self.outbox.flush(self.api, interrupt=self.aborting)


def _threads_from_env() -> int | None:
    value = os.environ.get("MORPHML_TORCH_THREADS", "")
    return int(value) if value.isdigit() and int(value) > 0 else None
