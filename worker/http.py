"""The worker's calls to the control plane, retried with exponential backoff and jitter.

Network errors, 429 and 5xx are retried (never in a tight loop); 409 and 404 mean the lease is gone
(`LeaseLost`); any other 4xx is a mistake retrying cannot fix (`ApiError`). Every wait can be cut
short by an event, so a shutting-down agent never sits in a backoff sleep.

Bodies are the wire models of `morphml.wire`, and so are answers: an answer that does not parse
(an id that is not an integer, a missing field) is a `MalformedAnswer`, never half-used.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from morphml.wire import (
    WORKER_CREDENTIAL_HEADER,
    BatchClaimRequest,
    ClaimedTask,
    ClaimedTasks,
    ClaimRequest,
    CompleteAndClaimAnswer,
    HeartbeatAnswer,
    HeartbeatRequest,
    NextClaim,
    WorkerCreate,
    WorkerPublic,
    first_problem,
)

log = logging.getLogger("morphml.worker")

# Read timeout beyond the server's long-poll wait, so a slow 204 is not mistaken for a dead server.
CLAIM_READ_SLACK_SECONDS = 15.0

# Failures in a row to connect at all after which the log says plainly that nothing answers.
NO_ANSWER_HINT_AFTER = 3

# The two final answers a worker posts for a task: /complete or /fail.
ReportKind = Literal["complete", "fail"]
Answer = TypeVar("Answer", bound=BaseModel)


class LeaseLost(Exception):
    """The server no longer honours this lease: 409 (stale token) or 404 (unknown task)."""

    def __init__(self, text: str, detail: str = "") -> None:
        super().__init__(text)
        self.detail = detail

    @property
    def no_such_route(self) -> bool:
        """The framework's own 404: a server older than this agent, without the endpoint."""
        return self.detail == "Not Found"


class ApiError(Exception):
    """A 4xx answer that retrying cannot fix (bad token, invalid body)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"HTTP {status}: {detail}")
        self.status = status


class MalformedAnswer(ApiError):
    """A 2xx answer that does not match the wire contract: a server bug or a different version."""


class Unreachable(Exception):
    """The call did not get through before its deadline, or the wait was interrupted."""


@dataclass(frozen=True)
class Problem:
    """Why an attempt is to be retried; `no_answer` when nothing even accepted the connection."""

    text: str
    no_answer: bool = False

    def __str__(self) -> str:
        return self.text


@dataclass
class Backoff:
    """Exponential backoff with "equal jitter": half the step fixed, half random.

    The fixed half keeps retries from ever becoming a tight loop; the random half spreads
    a fleet of workers that lost the server at the same moment.
    """

    base: float = 0.5
    cap: float = 30.0
    rng: random.Random = field(default_factory=random.Random)

    def delay(self, attempt: int) -> float:
        step = min(self.cap, self.base * 2.0**attempt)
        return step / 2 + self.rng.uniform(0, step / 2)


class ServerApi:
    """Typed wrappers of the worker endpoints over a client the caller built (and owns)."""

    def __init__(
        self,
        client: httpx.Client,
        *,
        backoff: Backoff | None = None,
        interrupt: threading.Event | None = None,
    ) -> None:
        self.client = client
        self.backoff = backoff or Backoff()
        # Set when waiting makes no sense any more (the agent aborts); cuts every backoff sleep.
        self.interrupt = interrupt or threading.Event()
        self.answered = False  # the server has answered at least once since the agent started
        # This worker's own credential from registration: every later call carries it, and a
        # server with tokens binds claims and results to the worker it was issued to.
        self.credential: str | None = None
        # Off once the server turns out not to have these endpoints (an older version).
        self.batch_claims = True
        self.claim_on_complete = True

    def register(self, body: WorkerCreate, *, stop: threading.Event) -> int:
        """The worker id the server assigned (its credential is kept for the later calls)."""
        response = self._post("/v1/workers", body, stop=stop)
        worker = _parse(WorkerPublic, response)
        self.credential = worker.credential
        return worker.id

    def claim(self, body: ClaimRequest, *, stop: threading.Event) -> ClaimedTask | None:
        timeout = httpx.Timeout(10.0, read=body.wait_seconds + CLAIM_READ_SLACK_SECONDS)
        response = self._post("/v1/tasks/claim", body, stop=stop, timeout=timeout)
        if response.status_code == 204:
            return None
        return _parse(ClaimedTask, response)

    def claim_batch(self, body: BatchClaimRequest, *, stop: threading.Event) -> list[ClaimedTask]:
        """Up to `body.max_tasks` tasks (none when nothing fitting came within the wait); one at
        a time from a server without `/claim-batch`."""
        if not self.batch_claims:
            task = self.claim(ClaimRequest(**body.model_dump(exclude={"max_tasks"})), stop=stop)
            return [task] if task is not None else []
        timeout = httpx.Timeout(10.0, read=body.wait_seconds + CLAIM_READ_SLACK_SECONDS)
        try:
            response = self._post("/v1/tasks/claim-batch", body, stop=stop, timeout=timeout)
        except LeaseLost as exc:
            if not exc.no_such_route:
                raise
            log.info("the server has no batch claims: claiming one task at a time")
            self.batch_claims = False
            return self.claim_batch(body, stop=stop)
        if response.status_code == 204:
            return []
        return _parse(ClaimedTasks, response).data

    def heartbeat(
        self, task_id: int, body: HeartbeatRequest, *, deadline: float
    ) -> HeartbeatAnswer:
        response = self._post(f"/v1/tasks/{int(task_id)}/heartbeat", body, deadline=deadline)
        return _parse(HeartbeatAnswer, response)

    def report(
        self,
        task_id: int,
        outcome: ReportKind,
        body: dict[str, Any],
        *,
        deadline: float,
        credential: str | None = None,
        claim: NextClaim | None = None,
    ) -> list[ClaimedTask]:
        """POST /complete or /fail; idempotent on the server by lease token. With `claim`, a
        completion also claims the slot's next task(s) in the same request (`/complete-and-claim`),
        which are returned; a server without that endpoint gets a plain /complete.

        `body` is a `CompleteRequest` or `FailRequest` as JSON: the outbox keeps it on disk, with
        the `credential` of the worker that held the lease (an agent restarted since registered
        as a new worker, but the result is still the old one's).
        """
        if outcome not in ("complete", "fail"):
            raise ValueError(f"unknown report {outcome!r}")
        base = f"/v1/tasks/{int(task_id)}"
        if claim is not None and outcome == "complete" and self.claim_on_complete:
            with_claim = {**body, "claim": claim.model_dump(mode="json")}
            try:
                response = self._post(
                    f"{base}/complete-and-claim",
                    with_claim,
                    deadline=deadline,
                    credential=credential,
                )
            except LeaseLost as exc:
                if not exc.no_such_route:
                    raise
                log.info("the server has no claim-on-complete: completing and claiming apart")
                self.claim_on_complete = False
            else:
                return _parse(CompleteAndClaimAnswer, response).next
        self._post(f"{base}/{outcome}", body, deadline=deadline, credential=credential)
        return []

    def _post(
        self,
        path: str,
        body: BaseModel | dict[str, Any],
        *,
        stop: threading.Event | None = None,
        deadline: float | None = None,
        timeout: httpx.Timeout | None = None,
        credential: str | None = None,
    ) -> httpx.Response:
        payload = body.model_dump(mode="json") if isinstance(body, BaseModel) else body
        credential = credential or self.credential
        headers = {WORKER_CREDENTIAL_HEADER: credential} if credential else None
        attempt = 0
        while True:
            problem = self._attempt(path, payload, timeout, headers)
            if isinstance(problem, httpx.Response):
                return problem
            delay = self.backoff.delay(attempt)
            if deadline is not None and time.monotonic() + delay > deadline:
                raise Unreachable(f"POST {path}: {problem}")
            if problem.no_answer and attempt >= NO_ANSWER_HINT_AFTER - 1:
                if (attempt - NO_ANSWER_HINT_AFTER + 1) % 5 == 0:
                    level = logging.WARNING if self.answered else logging.ERROR
                    hint = self._no_answer(attempt + 1, problem)
                    log.log(level, "%s; retrying in %.1fs", hint, delay)
            elif attempt == 0 or attempt % 5 == 0:
                log.warning("POST %s: %s; retrying in %.1fs", path, problem, delay)
            attempt += 1
            if self.pause(delay, stop):
                raise Unreachable(f"POST {path}: interrupted after {problem}")

    def _no_answer(self, failures: int, problem: Problem) -> str:
        url = self.client.base_url
        if self.answered:
            return (
                f"the server at {url} has stopped answering ({failures} tries in a row: "
                f"{problem}); it may be restarting"
            )
        return (
            f"nothing answers at {url} ({failures} tries in a row: {problem}). If that is not "
            "where morphml-server listens, restart this worker with the right URL: --server or "
            "MORPHML_WORKER_SERVER"
        )

    def _attempt(
        self,
        path: str,
        body: dict[str, Any],
        timeout: httpx.Timeout | None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response | Problem:
        """The response if it is final, else a description of what went wrong (to retry)."""
        try:
            if timeout is None:
                response = self.client.post(path, json=body, headers=headers)
            else:
                response = self.client.post(path, json=body, timeout=timeout, headers=headers)
        except httpx.TransportError as exc:
            # Refused, no route, a name that does not resolve: no server there at all.
            no_answer = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout)
            return Problem(f"{type(exc).__name__}: {exc}", no_answer)
        self.answered = True
        if response.status_code >= 500 or response.status_code == 429:
            return Problem(f"HTTP {response.status_code}")
        if response.status_code in (404, 409):
            detail = _detail(response)
            raise LeaseLost(f"POST {path}: HTTP {response.status_code}: {detail}", detail)
        if response.status_code >= 400:
            raise ApiError(response.status_code, _detail(response))
        return response

    def pause(self, delay: float, stop: threading.Event | None) -> bool:
        """Sleep `delay`; True when `stop` or the interrupt fired first."""
        end = time.monotonic() + delay
        while (left := end - time.monotonic()) > 0:
            if self.interrupt.is_set() or (stop is not None and stop.is_set()):
                return True
            (stop or self.interrupt).wait(min(left, 0.25))
        return self.interrupt.is_set()


class FailoverTransport(httpx.BaseTransport):
    """Several server replicas behind one client: each request goes to the current one.

    A replica that refuses the connection (nothing accepted it, so the request never reached it)
    is left at once and the same request goes to the next. Any other transport error (a reset,
    a timeout) also moves on, for the next request: the request itself is re-sent by the caller's
    retry, with its backoff, as for a single server. The worker then stays on the replica that
    answers, keeping its connections warm, until that one fails. The client's base URL is the
    first server's; requests are rewritten onto the current one's.
    """

    def __init__(self, servers: list[str], inner: httpx.BaseTransport | None = None) -> None:
        if not servers:
            raise ValueError("FailoverTransport needs at least one server URL")
        self.servers = [httpx.URL(url.rstrip("/")) for url in servers]
        self.inner = inner or httpx.HTTPTransport()
        self.current = 0
        self._lock = threading.Lock()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        original, first = request.url, self.current
        refused: httpx.TransportError | None = None
        for step in range(len(self.servers)):
            index = (first + step) % len(self.servers)
            self._aim(request, original, index)
            try:
                return self.inner.handle_request(request)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                refused = exc
                self._leave(index, exc)
            except httpx.TransportError as exc:
                self._leave(index, exc)
                raise
        assert refused is not None
        raise refused

    def close(self) -> None:
        self.inner.close()

    def _aim(self, request: httpx.Request, original: httpx.URL, index: int) -> None:
        """Point `request` (built on the first server's URL) at server `index`."""
        base, target = self.servers[0], self.servers[index]
        path = original.raw_path[len(base.raw_path.rstrip(b"/")) :]
        request.url = original.copy_with(
            scheme=target.scheme,
            host=target.host,
            port=target.port,
            raw_path=target.raw_path.rstrip(b"/") + path,
        )
        request.headers["Host"] = request.url.netloc.decode("ascii")

    def _leave(self, index: int, exc: httpx.TransportError) -> None:
        with self._lock:
            if self.current != index:
                return  # another slot's request already moved on
            self.current = (index + 1) % len(self.servers)
            following = self.servers[self.current]
        log.warning(
            "server %s: %s: %s; failing over to %s",
            self.servers[index], type(exc).__name__, exc, following,
        )  # fmt: skip


def _parse(model: type[Answer], response: httpx.Response) -> Answer:
    """The answer as its wire model, or `MalformedAnswer` saying what does not fit."""
    path = response.request.url.path
    try:
        return model.model_validate(response.json())
    except ValidationError as exc:
        problem = first_problem(exc)
    except ValueError:  # not JSON
        problem = f"not JSON: {response.text[:100]!r}"
    raise MalformedAnswer(response.status_code, f"POST {path}: unexpected answer ({problem})")


def _detail(response: httpx.Response) -> str:
    try:
        return str(response.json().get("detail", response.text))
    except (ValueError, AttributeError):
        return response.text[:200]
