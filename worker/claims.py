"""Claims for the agent's idle slots: one long-poll at a time, for as many tasks as slots wait.

Every idle slot comes to the desk. The first becomes the poller: it asks the server for up to one
task per idle slot (`/claim-batch`; a slot is busy from the task it takes here until it comes
back), each fitting the least of the waiting slots' free resources, keeps one and leaves the
others for the idle slots, which take them as soon as they reach the desk. While a poll is
out the other idle slots wait for it rather than open long-polls of their own. A busy slot does
not come here: its completion claims its next task (claim-on-complete, in `worker.task_run`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from morphml.wire import ClaimedTask, FreeResources

WAIT_STEP_SECONDS = 0.5


@dataclass(frozen=True)
class Handed:
    """A claimed task on its way to a slot; `received`: when its claim answered (monotonic)."""

    task: ClaimedTask
    received: float


ClaimTasks = Callable[[int, FreeResources | None], list[ClaimedTask]]


class ClaimDesk:
    """`take(slot, offer)` from each idle slot thread; `claim(count, free)` does the request."""

    def __init__(self, claim: ClaimTasks, stopping: threading.Event, slots: int) -> None:
        self._claim = claim
        self._stopping = stopping
        self._slots = slots
        self._busy: set[int] = set()  # slots that took a task here and have not come back
        self._changed = threading.Condition()
        self._ready: list[Handed] = []  # claimed for slots that have not taken them yet
        self._offers: list[FreeResources | None] = []  # one per slot waiting here
        self._polling = False

    def take(self, slot: int, offer: FreeResources | None) -> Handed | None:
        """A task for the calling slot; None when a claim of its own came back empty or the
        agent is stopping (the caller pauses or exits as after an empty claim)."""
        with self._changed:
            self._busy.discard(slot)
            self._offers.append(offer)
            try:
                while self._polling and not self._ready and not self._stopping.is_set():
                    self._changed.wait(WAIT_STEP_SECONDS)
                if self._ready:
                    self._busy.add(slot)
                    return self._ready.pop(0)
                if self._stopping.is_set():
                    return None
                self._polling = True
                count = max(1, self._slots - len(self._busy) - len(self._ready))
                free = least(self._offers)
            finally:
                self._offers.remove(offer)
        tasks: list[ClaimedTask] = []
        try:
            tasks = self._claim(count, free)
        finally:
            received = time.monotonic()
            with self._changed:
                self._polling = False
                self._ready.extend(Handed(task, received) for task in tasks[1:])
                if tasks:
                    self._busy.add(slot)
                self._changed.notify_all()
        return Handed(tasks[0], received) if tasks else None

    def give(self, tasks: list[ClaimedTask], received: float) -> None:
        """Tasks claimed for this agent beyond what their slot runs, for the next idle slot."""
        with self._changed:
            self._ready.extend(Handed(task, received) for task in tasks)
            self._changed.notify_all()

    def drain(self) -> list[Handed]:
        """What no slot took (the agent is stopping): to be handed back to the server."""
        with self._changed:
            left, self._ready = self._ready, []
        return left


def least(offers: list[FreeResources | None]) -> FreeResources | None:
    """What every waiting slot can give: each task of a batch must fit any of them."""
    known = [offer for offer in offers if offer is not None]
    if not known:
        return None
    return FreeResources(
        gpus=min(offer.gpus for offer in known),
        gpu_memory_mb=min(offer.gpu_memory_mb for offer in known),
    )
