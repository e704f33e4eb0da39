"""The agent: register, then one loop per slot (take a task -> hand it to a `TaskRun`).

Threads, not processes, run the slots: they spend their time waiting on HTTP and on children.
Each slot keeps a warm evaluation process (`worker.runner.SlotProcesses`), started before the
first claim. Idle slots get their tasks from one shared long-poll (`worker.claims.ClaimDesk`,
a batch claim for as many tasks as slots wait); a busy slot's completion claims its next task
(claim-on-complete), so a slot that keeps busy needs one request per task.
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

from morphml.wire import BatchClaimRequest, ClaimedTask, FreeResources, NextClaim, WorkerCreate
from worker.artifact_outbox import ArtifactOutbox
from worker.claims import ClaimDesk, Handed
from worker.config import WorkerSettings
from worker.health import Health
from worker.http import ApiError, Backoff, LeaseLost, ServerApi, Unreachable
from worker.outbox import Outbox, WorkDirLock
from worker.resources import Gpu, Machine, free_gpu_memory_mb
from worker.runner import Recycle, SlotProcesses
from worker.task_run import (
    DELIVERY_SECONDS,
    RunContext,
    Running,
    Shutdown,
    Slot,
    StartEvaluation,
    TaskRun,
    child_env,
)
from worker.timings import Overheads

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
        start_evaluation: StartEvaluation | None = None,
        backoff: Backoff | None = None,
        free_memory: Callable[[Gpu], int | None] = free_gpu_memory_mb,
        poll_interval: float = 0.2,
        min_heartbeat_gap: float = 1.0,
    ) -> None:
        self.settings = settings
        self.machine = machine
        threads = _threads_from_env()
        self.slots = plan_slots(list(machine.gpus), machine.cpus, settings.slots, threads)
        # A warm evaluation process per slot, unless the caller runs evaluations its own way.
        self.processes = [self._slot_processes(slot) for slot in self.slots]
        self.start_evaluation: list[StartEvaluation] = (
            [start_evaluation] * len(self.slots) if start_evaluation else list(self.processes)
        )
        self.free_memory = free_memory
        self.poll_interval = poll_interval
        self.min_heartbeat_gap = min_heartbeat_gap
        self.shutdown = Shutdown()
        self.api = ServerApi(client, backoff=backoff, interrupt=self.shutdown.aborting)
        self.outbox = Outbox(settings.work_dir / "outbox")
        self.artifacts = ArtifactOutbox(settings.work_dir / "outbox" / "artifacts")
        self.health = Health(settings.work_dir)
        self.worker_id: int | None = None
        self._running = Running()
        self._next_flush = 0.0
        self.overheads = Overheads()
        self.desk = ClaimDesk(self._claim, self.stopping, len(self.slots))
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
            self._warm_up()
            try:
                self._serve_slots()
            finally:
                self._hand_back(self.desk.drain())
                for processes in self.processes:
                    processes.close()
        log.info("%s", self.overheads.summary() or "task overhead: no tasks")
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

    def _slot_processes(self, slot: Slot) -> SlotProcesses:
        settings = self.settings
        # Default ceiling: the slot's share of the machine's memory.
        ceiling = settings.max_process_memory_mb or max(
            1, self.machine.memory_mb // max(1, len(self.slots))
        )
        recycle = Recycle(settings.max_tasks_per_process, ceiling)
        return SlotProcesses(settings.work_dir / "tasks", f"slot-{slot.number}", recycle)

    def _warm_up(self) -> None:
        """Start every slot's evaluation process before the first claim."""
        if self.start_evaluation != list(self.processes):
            return  # evaluations are the caller's (tests)
        for slot, processes in zip(self.slots, self.processes, strict=True):
            try:
                processes.warm_up(child_env(slot, self.settings.allow))
            except OSError as exc:  # the first task fails on it too, as a local failure
                log.warning("%s: could not start its evaluation process: %s", slot, exc)

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
        carried: Handed | None = None  # claimed by the slot's last completion
        while not self.stopping.is_set():
            try:
                carried = self._slot_step(slot, carried)
            except Exception:  # a bug must cost one iteration, not the slot
                log.exception("%s: unexpected error; carrying on", slot)
                carried = None  # its lease runs out and the task goes to another worker
                self.stopping.wait(self.idle_pause)
        if carried is not None:
            self._hand_back([carried])

    def _slot_step(self, slot: Slot, carried: Handed | None) -> Handed | None:
        """Run one task (the carried one, or one from the desk); the next one, if its
        completion claimed it."""
        if time.monotonic() >= self._next_flush:
            self.flush_outbox()
        if carried is None:
            pause = self.health.pause_before_claim()
            if pause > 0:  # unhealthy: no claims; results left in the outbox still go out
                self.stopping.wait(min(pause, OUTBOX_FLUSH_SECONDS))
                return None
            asked = time.monotonic()
            carried = self.desk.take(slot.number, self._free(slot))
            if carried is None:
                if time.monotonic() - asked < self.idle_pause:
                    self.stopping.wait(self.idle_pause)
                return None
        run = self._run_task(slot, carried)
        if not run.next_tasks:
            return None
        self.desk.give(run.next_tasks[1:], run.next_received)
        return Handed(run.next_tasks[0], run.next_received)

    def _claim(self, count: int, free: FreeResources | None) -> list[ClaimedTask]:
        """Up to `count` tasks that fit `free` (long-poll); none on a miss or a problem."""
        assert self.worker_id is not None, "claims come after registration"
        body = BatchClaimRequest(
            worker_id=self.worker_id,
            wait_seconds=self.settings.poll_seconds,
            free=free,
            labels=self.settings.labels,
            max_tasks=count,
        )
        try:
            return self.api.claim_batch(body, stop=self.stopping)
        except Unreachable:
            return []
        except LeaseLost:
            # 404: the server does not know this worker (e.g. its database was reset).
            log.warning("the server does not know worker %s; registering again", self.worker_id)
            self.worker_id = self._register() or self.worker_id
            return []
        except ApiError as exc:
            # Not fixable by retrying at once; pause so a misconfiguration is not a tight loop.
            # A malformed answer lands here too: the tasks it leased return to the queue when
            # their leases expire.
            log.error("claim refused: %s", exc)
            self.stopping.wait(self.api.backoff.cap)
            return []

    def _next_claim(self, slot: Slot) -> NextClaim | None:
        """What a completion on `slot` claims for it: nothing while stopping or unhealthy."""
        if self.worker_id is None or self.stopping.is_set():
            return None
        if self.health.pause_before_claim() > 0:
            return None
        return NextClaim(
            worker_id=self.worker_id, free=self._free(slot), labels=self.settings.labels
        )

    def _free(self, slot: Slot) -> FreeResources:
        """What the slot offers now; a GPU whose memory cannot be read offers nothing."""
        free_mb = self.free_memory(slot.gpu) if slot.gpu else None
        if free_mb is None:
            return FreeResources(gpus=0, gpu_memory_mb=0)
        return FreeResources(gpus=1, gpu_memory_mb=free_mb)

    def _run_task(self, slot: Slot, handed: Handed) -> TaskRun:
        context = RunContext(
            settings=self.settings,
            api=self.api,
            outbox=self.outbox,
            health=self.health,
            start_evaluation=self.start_evaluation[slot.number],
            shutdown=self.shutdown,
            running=self._running,
            poll_interval=self.poll_interval,
            min_heartbeat_gap=self.min_heartbeat_gap,
            delivery_seconds=self.delivery_seconds,
            overheads=self.overheads,
            next_claim=self._next_claim,
            artifacts=self.artifacts,
        )
        run = TaskRun(handed, slot, context)
        run.run()
        return run

    def _hand_back(self, left: list[Handed]) -> None:
        """Tasks claimed but never started (the agent is stopping): each is failed as retryable
        at once, rather than left to wait out its lease."""
        for handed in left:
            self._run_task(self.slots[0], handed)

    def flush_outbox(self) -> None:
        """Re-post what a previous run (or a network blip) left unacknowledged."""
        self._next_flush = time.monotonic() + OUTBOX_FLUSH_SECONDS
        self.outbox.flush(self.api, interrupt=self.aborting)
        self.artifacts.flush(self.api, interrupt=self.aborting)  # weights the store refused


def _threads_from_env() -> int | None:
    value = os.environ.get("MORPHML_TORCH_THREADS", "")
    return int(value) if value.isdigit() and int(value) > 0 else None
