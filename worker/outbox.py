"""Results kept until the server acknowledged them, so a network blip or restart loses none.

A result is written (atomically) before it is posted and deleted once the server answered 200, or
409/404 (the lease is gone: the task was requeued or given to another worker, so this result is
dropped). The first write is not fsynced: it survives the agent's crash or kill -9 (the page cache
keeps it) and costs well under a millisecond, where an fsync per task cost 10 ms and more on a
busy disk. A result whose post does not get through is fsynced then, so one that waits for the
server also survives a crash of the machine; a machine that dies in the milliseconds between
the write and the server's answer loses that result, and its task runs again once its lease
expires (never twice counted: the server takes one result per lease). When the disk refuses it
(full, read-only) the result is kept in memory and posted all the same: the outbox is a safety
net, not a precondition. The work dir is locked so that two agents never share (and double-post)
one outbox.

Every result is made postable when it is built or read back (`Result.complete`, `Result.fail`,
`Result.from_json`): text that JSON or the database cannot carry (lone surrogates, e.g. from an
undecodable file name in an error message, and NUL) is escaped, metrics that are not finite turn
the result into a final failure that says so, and an entry that still cannot be posted is set
aside as `.bad` with a log line that carries its error text. One entry never stops the others.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import math
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Any

from pydantic import ValidationError

from morphml.wire import ClaimedTask, CompleteRequest, FailRequest, NextClaim, first_problem
from worker import disk
from worker.http import ApiError, LeaseLost, ReportKind, ServerApi, Unreachable

log = logging.getLogger("morphml.worker")

# FailRequest.error's bound; a longer error would be refused whole rather than cut.
MAX_ERROR_CHARS = 20_000


@dataclass(frozen=True)
class Delivery:
    """What posting a result came to: `final` (acknowledged, or dropped for good) or kept for a
    later try; `claimed`, the tasks a claim-on-complete got for the slot."""

    final: bool
    claimed: list[ClaimedTask] = field(default_factory=list)


class FailReport(FailRequest):
    """`FailRequest` plus `environment`: true when the task failed because of this machine (its
    disk is full or read-only, an evaluation process cannot start), not because of the candidate,
    so that the server does not count the attempt against `max_attempts` and does not hand the
    task straight back to this worker. Sent only when true; a server that does not know the
    field ignores it."""

    environment: bool = False

    def body(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude=None if self.environment else {"environment"})


def clean_text(text: str) -> str:
    """`text` as any JSON encoder and the database take it: lone surrogates become `\\udcxx`
    escapes (the text is kept, not lost), NUL is removed."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "")


def clean(value: Any) -> Any:
    """`clean_text` applied to every string (keys included) of a JSON-like value."""
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, dict):
        return {clean_text(str(key)): clean(item) for key, item in value.items()}
    if isinstance(value, list):
        return [clean(item) for item in value]
    return value


@dataclass(frozen=True)
class Result:
    """One final answer for a task: `outcome` is "complete" or "fail", `body` is what is posted
    (a `CompleteRequest` or `FailReport`, as JSON). Build it with `complete` or `fail`."""

    task_id: int
    outcome: ReportKind
    body: dict[str, Any]
    # The file it was read from (whatever its name), so that it is the one removed once delivered.
    source: Path | None = field(default=None, compare=False)
    # The credential of the worker that held the lease, posted with the result.
    credential: str | None = field(default=None, compare=False)

    @classmethod
    def complete(cls, task_id: int, lease_token: str, metrics: dict[str, Any]) -> Result:
        """The metrics, or, when the API would refuse them (a nan, a 300-character name), a final
        failure that says why: the server would refuse the complete (422) and the task would wait
        out its lease and be retried until its attempts ran out, each time with the same result."""
        try:
            request = CompleteRequest(lease_token=lease_token, metrics=clean(metrics))
        except ValidationError as exc:
            shown = clean_text(repr(metrics))[:500]
            error = f"the metrics do not fit the API: {first_problem(exc)} (got {shown})"
            return cls.fail(task_id, lease_token, error, retryable=False)
        return cls(int(task_id), "complete", request.model_dump(mode="json"))

    @classmethod
    def fail(
        cls,
        task_id: int,
        lease_token: str,
        error: str,
        *,
        retryable: bool,
        environment: bool = False,
    ) -> Result:
        text = clean_text(error or "unknown error")[:MAX_ERROR_CHARS]
        request = FailReport(
            lease_token=lease_token, error=text, retryable=retryable, environment=environment
        )
        return cls(int(task_id), "fail", request.body())

    @property
    def name(self) -> str:
        # The lease token makes the name unique per attempt; hashing keeps it a safe file name.
        token = hashlib.sha256(str(self.body.get("lease_token")).encode()).hexdigest()[:16]
        return f"{int(self.task_id)}-{token}.json"

    @property
    def error(self) -> str:
        """The error text of a failure ("" for a completion)."""
        return str(self.body.get("error") or "")

    @classmethod
    def from_json(cls, raw: Any) -> Result:
        """An entry read back from disk, made postable; ValueError unless its id is an integer
        (it ends up in a URL), its outcome one of the two reports and its body one of theirs."""
        task_id, outcome, body = raw["task_id"], raw["outcome"], raw["body"]
        if isinstance(task_id, str) and task_id.isdecimal():
            task_id = int(task_id)  # entries written before ids were typed hold strings
        if not isinstance(task_id, int) or isinstance(task_id, bool):
            raise ValueError(f"task id {task_id!r} is not an integer")
        if outcome not in ("complete", "fail"):
            raise ValueError(f"unknown outcome {outcome!r}")
        if not isinstance(body, dict):
            raise ValueError("the body is not an object")
        token = body.get("lease_token")
        if not isinstance(token, str):
            raise ValueError("the body has no lease token")
        if outcome == "complete":
            if not isinstance(body.get("metrics"), dict):
                raise ValueError("a completion without metrics")
            return cls.complete(task_id, token, body["metrics"])
        body = clean(body)
        if isinstance(body.get("error"), str):
            body["error"] = body["error"][:MAX_ERROR_CHARS]
        try:
            request = FailReport.model_validate(body)
        except ValidationError as exc:
            raise ValueError(first_problem(exc)) from None
        return cls(task_id, "fail", request.body())


class Outbox:
    """A directory of pending results, one JSON file each, plus those the disk refused."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError:
            pass  # the health check before the first claim says what is wrong, and claims nothing
        self._flushing = threading.Lock()
        self._lock = threading.Lock()
        self._unsaved: dict[str, Result] = {}  # refused by the disk: posted from memory
        self._stuck: set[str] = set()  # files done with that could not be removed or renamed

    def put(self, result: Result) -> None:
        """Keep `result` on disk until it is acknowledged (fsynced only if its post fails: `keep`).
        When the disk refuses it the OSError is raised and the result is kept in memory instead
        (lost if the agent exits)."""
        payload: dict[str, Any] = {
            "task_id": result.task_id,
            "outcome": result.outcome,
            "body": result.body,
        }
        if result.credential:
            payload["credential"] = result.credential
        data = json.dumps(payload, allow_nan=False).encode()
        try:
            disk.write_file(self.directory / result.name, data)
        except OSError:
            with self._lock:
                self._unsaved[result.name] = result
            raise

    def _sync(self, result: Result) -> None:
        """Make a result that waits for the server durable: fsync its file, if it has one."""
        path = result.source or self.directory / result.name
        try:
            with path.open("rb") as handle:
                os.fsync(handle.fileno())
        except OSError:
            pass  # in memory only (the disk refused it), or already delivered by a flush

    def remove(self, result: Result) -> None:
        with self._lock:
            self._unsaved.pop(result.name, None)
        path = result.source or self.directory / result.name
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            log.error("outbox: cannot remove %s (%s); this agent will not post it again", path, exc)
            self._stuck.add(path.name)

    def pending(self) -> list[Result]:
        """Every result not yet acknowledged, oldest first; unreadable files are set aside."""
        return list(self._entries())

    def deliver(
        self, api: ServerApi, result: Result, *, deadline: float, claim: NextClaim | None = None
    ) -> Delivery:
        """Post one result (with `claim`: and claim the slot's next tasks in the same request);
        `final` once it is acknowledged, dropped or set aside."""
        try:
            claimed = api.report(
                result.task_id,
                result.outcome,
                result.body,
                deadline=deadline,
                credential=result.credential,
                claim=claim,
            )
        except LeaseLost as exc:
            claimed = []
            log.warning(
                "task %s: result dropped: the server no longer accepts it under this lease (%s). "
                "The lease was lost before the result got through (the server was unreachable "
                "for longer than the lease, or the experiment was cancelled): the task was "
                "requeued or given to another worker.",
                result.task_id, exc,
            )  # fmt: skip
        except ApiError as exc:
            claimed = []
            # Keeping a result the server rejects as invalid would block the outbox forever.
            log.error(
                "task %s: the server rejected the result, discarding it: %s%s",
                result.task_id, exc, _error_of(result),
            )  # fmt: skip
        except Unreachable as exc:
            log.warning("task %s: result kept for later: %s", result.task_id, exc)
            self._sync(result)
            return Delivery(final=False)
        except (ValueError, TypeError) as exc:  # cannot be encoded; `from_json` should prevent it
            path = result.source or self.directory / result.name
            self._set_aside(path, f"cannot be sent: {exc}", result.error)
            with self._lock:
                self._unsaved.pop(result.name, None)
            return Delivery(final=True)
        self.remove(result)
        return Delivery(final=True, claimed=claimed)

    def flush(self, api: ServerApi, *, interrupt: threading.Event) -> None:
        """Post every pending result, oldest first, one at a time, until one does not get
        through; an entry that cannot be read or sent is set aside and the next one tried."""
        if not self._flushing.acquire(blocking=False):
            return  # another slot is at it
        try:
            for result in self._entries():
                deadline = time.monotonic() + 10
                if interrupt.is_set() or not self.deliver(api, result, deadline=deadline).final:
                    return
                log.info("task %s: redelivered %s from the outbox", result.task_id, result.outcome)
        finally:
            self._flushing.release()

    def _entries(self) -> Iterator[Result]:
        """Results in memory first, then on disk oldest first, each read when its turn comes."""
        with self._lock:
            unsaved = list(self._unsaved.values())
        yield from unsaved
        names = {result.name for result in unsaved}
        for path in self._paths():
            if path.name not in names and path.name not in self._stuck:
                result = self._load(path)
                if result is not None:
                    yield result

    def _paths(self) -> list[Path]:
        try:
            paths = list(self.directory.glob("*.json"))
        except OSError:
            return []

        def age(path: Path) -> float:
            try:
                return path.stat().st_mtime
            except OSError:  # delivered by another slot meanwhile
                return math.inf

        return sorted(paths, key=age)

    def _load(self, path: Path) -> Result | None:
        raw: Any = None
        try:
            raw = json.loads(path.read_text(encoding="utf-8", errors="replace"))
            credential = raw.get("credential") if isinstance(raw, dict) else None
            if not (isinstance(credential, str) and credential.isascii() and len(credential) < 100):
                credential = None  # a bad one is only left out: the server then says 401 or 403
            return replace(Result.from_json(raw), source=path, credential=credential)
        except FileNotFoundError:
            return None  # delivered by another slot meanwhile
        except (OSError, ValueError, KeyError, TypeError) as exc:
            body = raw.get("body") if isinstance(raw, dict) else None
            error = body.get("error") if isinstance(body, dict) else None
            reason = f"unreadable: {type(exc).__name__}: {exc}"
            self._set_aside(path, reason, error if isinstance(error, str) else "")
            return None

    def _set_aside(self, path: Path, reason: str, error: str) -> None:
        """Rename a bad entry to `.bad` (kept for a person to look at); log it with its error."""
        bad = path.with_suffix(".bad")
        try:
            path.rename(bad)
            where = f"set aside as {bad.name}"
        except FileNotFoundError:
            where = "dropped (it was not on disk)"
        except OSError as exc:
            self._stuck.add(path.name)
            where = f"left in place, not posted again (cannot rename it: {exc})"
        kept = f"; its error text: {clean_text(error)}" if error else ""
        log.error("outbox: %s %s: %s%s", path.name, where, clean_text(reason)[:1000], kept)


def _error_of(result: Result) -> str:
    return f"; its error text: {result.error}" if result.error else ""


class WorkDirLock:
    """An exclusive lock on the work dir, held while the agent runs (released even on kill -9)."""

    def __init__(self, work_dir: Path) -> None:
        self.path = work_dir / "agent.lock"
        self.handle: IO[str] | None = None

    def __enter__(self) -> None:
        work_dir = self.path.parent
        try:
            work_dir.mkdir(parents=True, exist_ok=True)
            self.handle = self.path.open("a")  # "a": never truncates, creates when missing
        except OSError as exc:
            try:  # a read-only work dir: the health check says what to do, and nothing is claimed
                self.handle = self.path.open("r")
            except OSError:
                raise SystemExit(
                    f"morphml-worker cannot use its work dir {work_dir}: {exc}; "
                    f"{disk.advice(exc, work_dir)}"
                ) from None
        try:
            fcntl.flock(self.handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.handle.close()
            raise SystemExit(
                f"another morphml-worker uses {self.path.parent}; give this one its own --work-dir"
            ) from None

    def __exit__(self, *exc: object) -> None:
        if self.handle is not None:
            self.handle.close()
