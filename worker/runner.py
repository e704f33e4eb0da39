"""Start, watch and stop the child process that evaluates one task.

The child runs in its own session (process group) so that stopping it also stops anything it
spawned (data-loader workers, compilers). Its stdout and stderr go to `child.log` in the task's
directory; the tail of that log explains a crash that left no `result.json`.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from worker import disk

STOP_TIMEOUT_SECONDS = 5.0
LOG_TAIL_CHARS = 1500


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
    """What the agent needs of a running evaluation (a child process, or a fake in tests)."""

    def poll(self) -> Outcome | None: ...
    def read_reports(self) -> list[dict[str, float]]: ...
    def stop(self) -> None: ...
    def kill_now(self) -> None: ...


@dataclass
class ChildProcess:
    """One `python -m worker.child` run in `task_dir` with `env`."""

    task_dir: Path
    spec: dict[str, Any]
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = None
    _progress_offset: int = 0
    _pending: bytes = field(default=b"", repr=False)

    def start(self) -> ChildProcess:
        self.task_dir.mkdir(parents=True, exist_ok=True)
        disk.write_file(self.task_dir / "spec.json", json.dumps(self.spec).encode())
        with (self.task_dir / "child.log").open("wb") as log_file:
            self.process = subprocess.Popen(
                # -P: the task dir the child runs in is not put in front of its sys.path.
                [sys.executable, "-P", "-m", "worker.child", str(self.task_dir)],
                cwd=self.task_dir,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None, "start() first"
        return self.process.pid

    def poll(self) -> Outcome | None:
        """None while running; then the outcome from result.json, or from the exit status."""
        assert self.process is not None, "start() first"
        code = self.process.poll()
        if code is None:
            return None
        result_path = self.task_dir / "result.json"
        if result_path.exists():
            try:
                result = json.loads(result_path.read_text(errors="replace"))
            except (OSError, ValueError) as exc:
                return Outcome(error=f"the evaluation's result.json is unreadable: {exc}")
            return _outcome_from_result(result, self._log_tail())
        return Outcome(error=f"{_exit_reason(code)}{self._log_tail()}", retryable=True)

    def read_reports(self) -> list[dict[str, float]]:
        """Intermediate reports written since the last call (complete lines only)."""
        path = self.task_dir / "progress.jsonl"
        if not path.exists():
            return []
        with path.open("rb") as handle:
            handle.seek(self._progress_offset)
            chunk = handle.read()
        self._progress_offset += len(chunk)
        lines = (self._pending + chunk).split(b"\n")
        self._pending = lines.pop()  # a line the child is still writing
        return [json.loads(line)["metrics"] for line in lines if line.strip()]

    def stop(self) -> None:
        """SIGTERM the child's process group, SIGKILL it if it has not exited in a few seconds."""
        if self.process is None or self.process.poll() is not None:
            return
        _signal_group(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            _signal_group(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def kill_now(self) -> None:
        """SIGKILL at once: the agent itself is exiting and cannot wait."""
        if self.process is not None and self.process.poll() is None:
            _signal_group(self.process.pid, signal.SIGKILL)

    def _log_tail(self) -> str:
        try:
            text = (self.task_dir / "child.log").read_bytes()[-LOG_TAIL_CHARS:]
        except OSError:
            return ""
        tail = text.decode(errors="replace").strip()
        return f"\n--- child log tail ---\n{tail}" if tail else ""


def _outcome_from_result(result: dict[str, Any], log_tail: str) -> Outcome:
    if "metrics" in result:
        return Outcome(metrics={k: float(v) for k, v in result["metrics"].items()})
    retryable = bool(result.get("retryable", True))
    # A retryable error is likely environmental: the log helps; a bad-input error says it all.
    error = str(result.get("error")) + (log_tail if retryable else "")
    return Outcome(error=error, retryable=retryable)


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
