"""The evaluation processes: one long-lived child per slot that runs its tasks one after another.

A child (`python -m worker.child CMD_FD REPLY_FD`) pays the interpreter start, the imports (torch
above all), the CUDA context and the dataset loads once, then serves task after task: the agent
writes `{"task_dir": ...}` on its command pipe, the child answers on its reply pipe with one JSON
line per intermediate report and one with the result. It runs in its own session (process group)
so that stopping it also stops anything it spawned (data-loader workers, compilers).

Isolation is per process, as before: a crash, an OOM kill, a hang past the timeout or the
server's "stop" ends that child only (the agent kills its process group), the task is reported
from the exit status and the tail of the task's `child.log`, and the slot's next task gets a
fresh child. A child is also retired after `Recycle.max_tasks` tasks or once its memory passes
`Recycle.max_memory_mb`; `max_tasks=1` is a fresh process per task.
"""

from __future__ import annotations

import json
import logging
import os
import select
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from worker import disk
from worker.artifacts import Saved

log = logging.getLogger("morphml.worker")

STOP_TIMEOUT_SECONDS = 5.0
LOG_TAIL_CHARS = 1500
DEFAULT_MAX_TASKS = 1000
# A reply line longer than this is not ours to parse (a runaway evaluator writing to the fd).
MAX_REPLY_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class Outcome:
    """How an evaluation ended: metrics, or an error and whether another attempt makes sense
    (`environment`: the error is this machine's, not the candidate's), or `dropped`: why nothing
    is to be reported (the server said stop, or the lease is gone)."""

    metrics: dict[str, float] | None = None
    error: str | None = None
    retryable: bool = True
    environment: bool = False
    dropped: str | None = None


class Evaluation(Protocol):
    """What the agent needs of a running evaluation (a child's task, or a fake in tests)."""

    def poll(self) -> Outcome | None: ...
    def wait(self, timeout: float) -> None: ...
    def read_reports(self) -> list[dict[str, float]]: ...
    def read_saved(self) -> list[Saved]: ...
    def stop(self) -> None: ...
    def kill_now(self) -> None: ...


@dataclass(frozen=True)
class Recycle:
    """When a slot's child is replaced by a fresh one: after `max_tasks` tasks, or when its
    resident memory after a task is above `max_memory_mb` (None: no ceiling)."""

    max_tasks: int = DEFAULT_MAX_TASKS
    max_memory_mb: int | None = None


class Child:
    """One `python -m worker.child` process and its two pipes."""

    def __init__(self, env: dict[str, str], home: Path, log_path: Path) -> None:
        self.env = env
        self.log_path = log_path  # its output between tasks (a crash at import lands here)
        self.tasks = 0
        self._buffer = b""
        home.mkdir(parents=True, exist_ok=True)
        command_read, self._command_write = os.pipe()
        self._reply_read, reply_write = os.pipe()
        try:
            with log_path.open("wb") as log_file:
                self.process = subprocess.Popen(
                    # -P: the directory it runs in is not put in front of its sys.path.
                    [
                        sys.executable,
                        "-P",
                        "-m",
                        "worker.child",
                        str(command_read),
                        str(reply_write),
                    ],
                    cwd=home,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                    pass_fds=(command_read, reply_write),
                    start_new_session=True,
                )
        except BaseException:
            self._close_pipes()
            raise
        finally:
            os.close(command_read)
            os.close(reply_write)

    @property
    def pid(self) -> int:
        return self.process.pid

    def send(self, command: dict[str, Any]) -> bool:
        """False when the child is gone (the task's outcome then comes from its exit)."""
        try:
            os.write(self._command_write, json.dumps(command).encode() + b"\n")
        except OSError:  # BrokenPipeError: it died before it could take the task
            return False
        return True

    def receive(self, timeout: float) -> tuple[list[dict[str, Any]], bool]:
        """The messages that arrive within `timeout` (all that are there at once, for 0), and
        whether the reply pipe reached its end (the child exited)."""
        ready, _, _ = select.select([self._reply_read], [], [], max(0.0, timeout))
        if not ready:
            return [], False
        chunk = os.read(self._reply_read, 1 << 16)
        if not chunk:
            return [], True
        lines = (self._buffer + chunk).split(b"\n")
        self._buffer = lines.pop()
        if len(self._buffer) > MAX_REPLY_BYTES:
            raise OSError("the evaluation process wrote an oversized reply")
        messages = [json.loads(line) for line in lines if line.strip()]
        if not all(isinstance(message, dict) for message in messages):
            raise ValueError("the evaluation process wrote a reply that is not an object")
        return messages, False

    def exit_code(self) -> int:
        """Its exit status, once the reply pipe has ended (killed if it lingers on)."""
        try:
            return self.process.wait(STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:  # it closed its reply pipe but did not exit
            self.kill_now()
            return self.process.wait()

    def alive(self) -> bool:
        return self.process.poll() is None

    def retire(self) -> None:
        """Ask it to exit after its current task (end of its command pipe), without waiting;
        a thread reaps it, or kills it when it lingers (a non-daemon thread of user code)."""
        self._close_pipes()
        threading.Thread(target=self._reap, name=f"reap {self.pid}", daemon=True).start()

    def stop(self) -> None:
        """SIGTERM its process group, SIGKILL it if it has not exited in a few seconds."""
        if self.alive():
            _signal_group(self.pid, signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                _signal_group(self.pid, signal.SIGKILL)
                self.process.wait()
        self._close_pipes()

    def kill_now(self) -> None:
        """SIGKILL at once: the agent itself is exiting and cannot wait."""
        if self.alive():
            _signal_group(self.pid, signal.SIGKILL)

    def _reap(self) -> None:
        try:
            self.process.wait(STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            self.stop()

    def _close_pipes(self) -> None:
        for name in ("_command_write", "_reply_read"):
            fd = getattr(self, name, -1)
            if fd >= 0:
                os.close(fd)
                setattr(self, name, -1)


class SlotProcesses:
    """A slot's evaluation processes: the warm child its tasks run in, started ahead of need.

    Called as `start(task_dir, spec, env)` (the agent's `StartEvaluation`): writes the task's
    `spec.json` and `child.log` (so that a full disk fails here, in the agent), hands the task to
    the warm child (a fresh one when the last one died, was stopped or was retired, or when `env`
    changed) and returns the task's `Evaluation`. Used by one slot thread at a time.
    """

    def __init__(
        self, home: Path, name: str, recycle: Recycle | None = None, *, prespawn: bool = True
    ) -> None:
        self.home = home
        self.name = name
        self.recycle = recycle or Recycle()
        # Start the next child as soon as one is gone, rather than when the next task comes.
        self.prespawn = prespawn
        self.child: Child | None = None

    def warm_up(self, env: dict[str, str]) -> None:
        """Start the child now, so that the first task does not wait for its imports."""
        if self.child is None or not self.child.alive() or self.child.env != env:
            old, self.child = self.child, None
            if old is not None:
                old.stop()
            self.child = Child(env, self.home, self.home / f"{self.name}.log")

    def __call__(self, task_dir: Path, spec: dict[str, Any], env: dict[str, str]) -> ChildTask:
        task_dir.mkdir(parents=True, exist_ok=True)
        disk.write_file(task_dir / "spec.json", json.dumps(spec).encode())
        disk.write_file(task_dir / "child.log", b"")
        self.warm_up(env)
        assert self.child is not None
        child = self.child
        task = ChildTask(child, task_dir, self._finished)
        if not child.send({"task_dir": str(task_dir)}):
            task.child_gone()
        return task

    def close(self) -> None:
        """Retire the child (the agent is stopping)."""
        if self.child is not None:
            self.child.retire()
            self.child = None

    def _finished(self, child: Child, outcome: Outcome, rss_mb: float | None) -> None:
        """After each task: a child that ended, served its quota or grew too big is replaced
        at once (when `prespawn`), so that the next task finds a warm one."""
        if child is not self.child:
            return
        child.tasks += 1
        ceiling = self.recycle.max_memory_mb
        try:
            if not child.alive():
                self._replace(child.env)
            elif child.tasks >= self.recycle.max_tasks:
                self._replace(child.env, retire=True)
            elif ceiling is not None and rss_mb is not None and rss_mb > ceiling:
                log.info(
                    "%s: its evaluation process uses %.0f MiB (ceiling %d): starting a fresh one",
                    self.name, rss_mb, ceiling,
                )  # fmt: skip
                self._replace(child.env, retire=True)
        except OSError as exc:  # the next start fails again, where it fails the task that needs it
            log.warning("%s: could not start its next evaluation process: %s", self.name, exc)

    def _replace(self, env: dict[str, str], *, retire: bool = False) -> None:
        old, self.child = self.child, None
        if old is not None:
            old.retire() if retire else old.stop()
        if self.prespawn:
            self.child = Child(env, self.home, self.home / f"{self.name}.log")


class ChildTask:
    """One task in a slot's child: its reports and its outcome, read off the reply pipe."""

    def __init__(
        self,
        child: Child,
        task_dir: Path,
        finished: Any,
    ) -> None:
        self.child = child
        self.task_dir = task_dir
        self._finished = finished
        self._reports: list[dict[str, float]] = []
        self._saved: list[Saved] = []
        self._outcome: Outcome | None = None

    def poll(self) -> Outcome | None:
        """None while running; then the outcome from the child's answer, or from its exit."""
        if self._outcome is None:
            self._pump(0.0)
        return self._outcome

    def wait(self, timeout: float) -> None:
        """Until the child says something (or exits), at most `timeout` seconds."""
        if self._outcome is None:
            self._pump(timeout)

    def read_reports(self) -> list[dict[str, float]]:
        """Intermediate reports received since the last call."""
        reports, self._reports = self._reports, []
        return reports

    def read_saved(self) -> list[Saved]:
        """Files the evaluation asked to upload since the last call (checkpoints, weights)."""
        saved, self._saved = self._saved, []
        return saved

    def stop(self) -> None:
        """Called when the task is over for the agent: a child still running it (a timeout, the
        server's stop, a shutdown) is stopped; a child that answered stays warm."""
        if self._outcome is None:
            self._outcome = Outcome(error="stopped", retryable=True)
            self.child.stop()
            self._finished(self.child, self._outcome, None)

    def kill_now(self) -> None:
        self.child.kill_now()

    def child_gone(self) -> None:
        """The child could not take the task: its outcome is its exit."""
        self._settle(_exit_outcome(self.child.exit_code(), self._log_tail()), None)

    def _pump(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self._outcome is None:
            try:
                messages, ended = self.child.receive(deadline - time.monotonic())
            except (OSError, ValueError) as exc:  # garbage on the reply pipe
                self.child.stop()
                self._settle(Outcome(error=f"the evaluation process misbehaved: {exc}"), None)
                return
            for message in messages:
                self._take(message)
            if ended and self._outcome is None:
                self.child_gone()
            if not messages or time.monotonic() >= deadline:
                return

    def _take(self, message: dict[str, Any]) -> None:
        if "report" in message:
            self._reports.append(message["report"])
        elif "checkpoint" in message or "artifact" in message:
            try:
                self._saved.append(Saved.from_message(message, self.task_dir))
            except ValueError as exc:  # the evaluation's own business: it is not uploaded
                log.warning("%s: not uploaded: %s", self.task_dir.name, exc)
        elif "result" in message:
            outcome = _outcome_from_result(message["result"], self._log_tail())
            self._settle(outcome, message.get("rss_mb"))

    def _settle(self, outcome: Outcome, rss_mb: float | None) -> None:
        self._outcome = outcome
        self._finished(self.child, outcome, rss_mb)

    def _log_tail(self) -> str:
        """The end of the task's `child.log`, or of the child's own log when the task's is empty
        (it died before it took the task: an import error, say)."""
        for path in (self.task_dir / "child.log", self.child.log_path):
            try:
                text = path.read_bytes()[-LOG_TAIL_CHARS:]
            except OSError:
                continue
            tail = text.decode(errors="replace").strip()
            if tail:
                return f"\n--- child log tail ---\n{tail}"
        return ""


def start_fresh(task_dir: Path, spec: dict[str, Any], env: dict[str, str]) -> ChildTask:
    """A one-off process for one task (what `--max-tasks-per-process 1` gives every task)."""
    processes = SlotProcesses(
        task_dir.parent, f"fresh-{task_dir.name}", Recycle(max_tasks=1), prespawn=False
    )
    return processes(task_dir, spec, env)


def _outcome_from_result(result: dict[str, Any], log_tail: str) -> Outcome:
    if "metrics" in result:
        return Outcome(metrics={k: float(v) for k, v in result["metrics"].items()})
    retryable = bool(result.get("retryable", True))
    # A retryable error is likely environmental: the log helps; a bad-input error says it all.
    error = str(result.get("error")) + (log_tail if retryable else "")
    return Outcome(error=error, retryable=retryable)


def _exit_outcome(code: int, log_tail: str) -> Outcome:
    return Outcome(error=f"{_exit_reason(code)}{log_tail}", retryable=True)


def _exit_reason(code: int) -> str:
    if code >= 0:
        return f"the evaluation process exited with code {code} without a result"
    name = signal.Signals(-code).name if -code in signal.valid_signals() else str(-code)
    hint = " (out of memory?)" if -code == signal.SIGKILL else ""
    return f"the evaluation process was killed by {name}{hint}"


def _signal_group(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass
