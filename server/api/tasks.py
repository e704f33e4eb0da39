"""Tasks (worker token): long-poll claim (one task or a batch), heartbeat, complete (optionally
with the next claim), fail.

Wire contract with `morphml-worker` (ids are integers; times are ISO 8601 UTC, database clock):

- `POST /v1/tasks/claim` {worker_id, wait_seconds (0..60, default 30), free: {gpus, gpu_memory_mb}
  (default: everything the worker registered), labels (default: the registered ones)}
  -> 200 {id, experiment_id, candidate: {architecture, budget, meta}, evaluator: {kind, params},
  objectives, budget, attempt, lease_token, lease_expires_at, lease_seconds}, or 204 when nothing
  fit within the wait; 404 for an unregistered worker_id.
- `POST /v1/tasks/claim-batch` {the same, and max_tasks (1..64, default 1)} -> 200 {data: [1 to
  max_tasks of the claim's answer, each under its own lease]}, or 204 / 404 as for a claim. It
  never waits for more than one; a worker that declared `slots` gets at most its free ones.
- `POST /v1/tasks/{id}/heartbeat` {lease_token, progress, step, metrics}
  -> 200 {action: "continue" | "stop", reason, lease_expires_at}. On "stop" the task is already
  pruned or cancelled on the server: drop it. 409 for a stale token, 404 for an unknown task.
- `POST /v1/tasks/{id}/complete` {lease_token, metrics} -> 200 the task; the same token again gets
  the same answer and records nothing new; 409 for a stale token (or a task no longer running).
- `POST /v1/tasks/{id}/complete-and-claim` {lease_token, metrics, claim: {worker_id, free, labels,
  max_tasks}} -> 200 {task: what complete answers, next: [0 to max_tasks claimed tasks]}: the
  complete, then at once (no waiting) a claim as claim-batch makes it; `next` is empty when
  nothing fit (long-poll `/claim` then). Refused completions (404, 409) claim nothing.
- `POST /v1/tasks/{id}/fail` {lease_token, error, retryable} -> 200 the task, pending again with
  attempt + 1 or failed when attempts are exhausted; 409 for a stale token.
"""

from __future__ import annotations

import asyncio
from asyncio import FIRST_COMPLETED
from typing import Annotated

from fastapi import APIRouter, Path, Request, Response, status
from sqlalchemy.engine import Engine

from server.api import examples
from server.api.responses import errors, extra
from server.artifacts import cleanup
from server.config import Settings
from server.db import Database
from server.deps import (
    ArtifactStoreDep,
    CallerWorker,
    DatabaseDep,
    MetricsDep,
    SettingsDep,
    WorkerAuth,
)
from server.errors import ConflictError, NotFoundError
from server.experiments import task_public
from server.models import TaskState
from server.schemas import (
    BatchClaimRequest,
    ClaimedTask,
    ClaimedTasks,
    ClaimRequest,
    CompleteAndClaimAnswer,
    CompleteAndClaimRequest,
    CompleteRequest,
    EvaluatorPublic,
    FailRequest,
    HeartbeatAnswer,
    HeartbeatRequest,
    NextClaim,
    ObjectiveSpec,
    TaskPublic,
)
from server.store import artifacts as artifact_rows
from server.store import tasks as store
from server.store import warm_start
from server.wakeup import ClaimWaker, Hops, waker_for

router = APIRouter(prefix="/v1/tasks", tags=["tasks"], dependencies=[WorkerAuth])
TaskId = Annotated[int, Path(ge=1, le=2**31 - 1, description="The task's id (from the claim).")]

NO_TASK = ("No task has this id.", "task 12 not found")
STALE_EXAMPLE = "task 12: lease token is not current (the task was reassigned or finished)"
STALE = (
    "The lease token is not the task's current one (the lease expired and the task went to "
    "another worker, or it finished): nothing was changed; drop the task."
)
# What /complete and /complete-and-claim answer besides 200 (the same completion).
COMPLETE_ERRORS = errors(
    worker=True,
    body=True,
    status_404=NO_TASK,
    status_409=(
        STALE + " Or the task is no longer running (pruned, cancelled, failed).",
        STALE_EXAMPLE,
    ),
)
LEASE_BODY = (
    "The body does not fit the schema (`detail` lists each field), or the task id is out of range."
)


@router.post(
    "/claim",
    response_model=ClaimedTask,
    summary="Claim a task (long-poll)",
    description="Take the next pending task this worker can run, or wait for one up to "
    "`wait_seconds`. A task fits when the worker has the GPUs and GPU memory its experiment "
    "needs (`free`, by default everything it registered) and every label it asks for; higher "
    "`priority` experiments go first. The answer carries everything needed to run the "
    "candidate and a **lease**: `lease_token`, valid `lease_seconds` (until "
    "`lease_expires_at`) and kept alive by heartbeats; every later call for the task carries "
    "the token. A lease that expires puts the task back to pending (attempt + 1) for another "
    "worker.\n\n204 when nothing fitting came within the wait, and at once when the server "
    "is stopping: claim again (from another replica, or after the restart).\n\n"
    "Worker or admin token.",
    response_description="A task, under a lease for this worker.",
    responses={
        204: {"description": "Nothing fitting became available within wait_seconds"},
        **errors(
            worker=True,
            body=True,
            status_404=("No worker has this `worker_id`: register.", "worker 3 not registered"),
        ),
    },
    openapi_extra=extra(
        invalid="The body does not fit the schema (`detail` lists each field).",
        examples=examples.CLAIM,
    ),
)
async def claim(
    body: ClaimRequest,
    request: Request,
    database: DatabaseDep,
    settings: SettingsDep,
    metrics: MetricsDep,
    caller: CallerWorker,
) -> ClaimedTask | Response:
    """A claim-batch of one."""
    claimed = await _long_poll(body, 1, request, database, settings, caller)
    if not claimed:
        metrics.empty_claims.inc()
        return Response(status_code=status.HTTP_204_NO_CONTENT)
    metrics.claims.inc()
    return claimed[0]


@router.post(
    "/claim-batch",
    response_model=ClaimedTasks,
    summary="Claim up to max_tasks tasks (long-poll)",
    description="The claim of `/claim` for several free slots at once: wait up to "
    "`wait_seconds` until at least one fitting task is pending, then lease up to `max_tasks` "
    "of them in one go, each picked as a single claim would pick it (priority, then fair "
    "share between experiments, recounted after each pick, then the older experiment) and "
    "each fitting `free` and `labels` (so a worker whose free slots differ sends the least "
    "of them). It never waits for more than the first: the answer holds 1 to `max_tasks` "
    "tasks, each under its own lease (`lease_token`), heartbeated and reported on its own. A "
    "worker that declared `slots` gets at most as many as it has free (409 when it holds "
    "them all).\n\n204 when nothing fitting came within the wait, and at once when the "
    "server is stopping.\n\nWorker or admin token.",
    response_description="1 to `max_tasks` tasks, each under a lease for this worker.",
    responses={
        204: {"description": "Nothing fitting became available within wait_seconds"},
        **errors(
            worker=True,
            body=True,
            status_404=("No worker has this `worker_id`: register.", "worker 3 not registered"),
            status_409=(
                "The worker already holds as many leases as the `slots` it registered.",
                "worker 3 already holds 4 running tasks, its declared slots",
            ),
        ),
    },
    openapi_extra=extra(
        invalid="The body does not fit the schema (`detail` lists each field).",
        examples=examples.CLAIM_BATCH,
    ),
)
async def claim_batch(
    body: BatchClaimRequest,
    request: Request,
    database: DatabaseDep,
    settings: SettingsDep,
    metrics: MetricsDep,
    caller: CallerWorker,
) -> ClaimedTasks | Response:
    claimed = await _long_poll(body, body.max_tasks, request, database, settings, caller)
    if not claimed:
        metrics.empty_claims.inc()
        return Response(status_code=status.HTTP_204_NO_CONTENT)
    metrics.claims.inc(len(claimed))
    return ClaimedTasks(data=claimed)


async def _long_poll(
    body: ClaimRequest,
    max_tasks: int,
    request: Request,
    database: Database,
    settings: Settings,
    caller: int | None,
) -> list[ClaimedTask]:
    """Claim up to `max_tasks`, waiting up to `wait_seconds` for the first; [] when nothing fit.
    A thread and a connection are held only while one claim attempt runs.

    The wait also ends when the server starts to stop (`app.state.stopping`, resolved by the
    lifespan in `server.main`): an open long-poll then answers 204 at once instead of holding
    the graceful shutdown until uvicorn cancels it."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + body.wait_seconds
    stopping = _stopping(request)
    waker = waker_for(database.engine)
    hops: Hops | None = None  # set while we hold a wakeup
    while True:
        # Park before trying, so a task announced during the attempt still wakes us.
        waiter = waker.park()
        try:
            claimed = await database.run(_claim_once, body, max_tasks, caller)
            if hops is not None and isinstance(claimed, store.Miss) and claimed.unfit:
                waker.pass_on(hops)  # the task we were woken for may fit another worker
            remaining = deadline - loop.time()
            if not isinstance(claimed, store.Miss) or remaining <= 0:
                break
            if await request.is_disconnected():
                break
        except BaseException:
            waker.unpark(waiter)
            raise
        hops = await _wait(waker, waiter, min(remaining, settings.claim_repoll_seconds), stopping)
        if stopping.done():
            break  # a wakeup we got but do not use is passed on by the unpark below
    waker.unpark(waiter)
    return [] if isinstance(claimed, store.Miss) else claimed


def _stopping(request: Request) -> asyncio.Future[None]:
    """Resolved when the server starts to stop; never, for an app whose lifespan did not run."""
    stopping: asyncio.Future[None] | None = getattr(request.app.state, "stopping", None)
    return stopping if stopping is not None else asyncio.get_running_loop().create_future()


async def _wait(
    waker: ClaimWaker, waiter: asyncio.Future[Hops], timeout: float, stopping: asyncio.Future[None]
) -> Hops | None:
    """The wakeup's hops, or None when the timeout (a safety re-poll) or the server's stop came
    first."""
    try:
        await asyncio.wait((waiter, stopping), timeout=timeout, return_when=FIRST_COMPLETED)
    except BaseException:  # cancelled: leave the queue, so that no wakeup is lost on us
        waker.unpark(waiter)
        raise
    if waiter.done() and not waiter.cancelled():
        return waiter.result()
    waker.unpark(waiter)
    return None


def _claim_once(
    engine: Engine, body: ClaimRequest | NextClaim, max_tasks: int, caller: int | None
) -> list[ClaimedTask] | store.Miss:
    free = body.free
    found = store.claim(
        engine,
        worker_id=body.worker_id,
        free_gpus=free.gpus if free else None,
        free_gpu_memory_mb=free.gpu_memory_mb if free else None,
        labels=body.labels,
        caller=caller,
        wait_seconds=body.wait_seconds if isinstance(body, ClaimRequest) else None,
        max_tasks=max_tasks,
    )
    if isinstance(found, store.Miss):
        return found
    runs: dict[int, tuple[EvaluatorPublic, list[ObjectiveSpec]]] = {}
    claimed = [_claimed_task(claimed, runs) for claimed in found]
    return _with_checkpoints(engine, claimed)


def _with_checkpoints(engine: Engine, claimed: list[ClaimedTask]) -> list[ClaimedTask]:
    """A retried task resumes from its latest stored checkpoint, a promotion starts from its
    lower rung's weights: one indexed query each, and only when the batch holds a retry or a
    promotion (most claims hold neither)."""
    retried = [task.id for task in claimed if task.attempt > 1]
    promoted = [task.id for task in claimed if warm_start.is_promotion(task.candidate)]
    if not retried and not promoted:
        return claimed
    latest = artifact_rows.latest_checkpoints(engine, retried)
    lower = warm_start.warm_starts(engine, promoted)
    return [
        task.model_copy(
            update={"checkpoint": latest.get(task.id), "warm_start": lower.get(task.id)}
        )
        for task in claimed
    ]


def _claimed_task(
    found: store.Claim, runs: dict[int, tuple[EvaluatorPublic, list[ObjectiveSpec]]]
) -> ClaimedTask:
    """The wire form of a claim; `runs` holds each experiment's evaluator and objectives,
    validated once per batch."""
    task = found.task
    assert (
        task.id is not None and task.lease_token is not None and task.lease_expires_at is not None
    )
    run = runs.get(task.experiment_id)
    if run is None:
        evaluator = EvaluatorPublic.model_validate(found.spec["evaluator"])
        objectives = [ObjectiveSpec.model_validate(o) for o in found.spec["objectives"]]
        run = runs[task.experiment_id] = (evaluator, objectives)
    return ClaimedTask(
        id=task.id,
        experiment_id=task.experiment_id,
        candidate=task.candidate,
        evaluator=run[0],
        objectives=run[1],
        budget=task.budget,
        attempt=task.attempt,
        lease_token=task.lease_token,
        lease_expires_at=task.lease_expires_at,
        lease_seconds=found.lease_seconds,
    )


@router.post(
    "/{task_id}/heartbeat",
    summary="Heartbeat: keep a lease, report progress",
    description="Extend the task's lease by its `lease_seconds` (send one every third of it) "
    "and record optional progress, step and intermediate metrics (e.g. per epoch), which "
    "pruners read. The answer says `continue`, with the new expiry, or `stop` with a reason "
    "when the task was pruned or its experiment cancelled: it is already settled on the "
    "server, so the worker drops it without reporting.\n\nWorker or admin token.",
    response_description="`continue` with the lease's new expiry, or `stop` with the reason.",
    responses=errors(
        worker=True,
        body=True,
        status_404=NO_TASK,
        status_409=(STALE + " Or the task is no longer running.", STALE_EXAMPLE),
    ),
    openapi_extra=extra(invalid=LEASE_BODY, examples=examples.HEARTBEAT),
)
async def heartbeat(
    task_id: TaskId,
    body: HeartbeatRequest,
    database: DatabaseDep,
    metrics: MetricsDep,
    caller: CallerWorker,
) -> HeartbeatAnswer:
    beat = await database.run(_heartbeat, task_id, body, caller)
    if beat.pruned:
        metrics.outcomes.labels(outcome="pruned").inc()
    if beat.refill_due and beat.experiment_id is not None:
        await database.refill(store.refill_after, beat.experiment_id)
    if beat.stop_reason is not None:
        return HeartbeatAnswer(action="stop", reason=beat.stop_reason, lease_expires_at=None)
    return HeartbeatAnswer(action="continue", reason=None, lease_expires_at=beat.lease_expires_at)


def _heartbeat(
    engine: Engine, task_id: int, body: HeartbeatRequest, caller: int | None
) -> store.Beat:
    return store.heartbeat(
        engine,
        task_id=task_id,
        lease_token=body.lease_token,
        progress=body.progress,
        step=body.step,
        metrics=body.metrics,
        caller=caller,
        refill_inline=False,
    )


@router.post(
    "/{task_id}/complete",
    summary="Complete a task",
    description="Record the task's final metrics (they must include the experiment's "
    "objectives to rank it); its result goes to the optimizer, which proposes the next "
    "candidates. Idempotent: the same token again answers the same task and records nothing "
    "new, so a worker may retry after a lost answer.\n\nWorker or admin token.",
    response_description="The completed task.",
    responses=COMPLETE_ERRORS,
    openapi_extra=extra(invalid=LEASE_BODY, examples=examples.COMPLETE),
)
async def complete(
    task_id: TaskId,
    body: CompleteRequest,
    database: DatabaseDep,
    metrics: MetricsDep,
    caller: CallerWorker,
    artifacts: ArtifactStoreDep,
) -> TaskPublic:
    settled = await database.run(
        store.complete,
        task_id=task_id,
        lease_token=body.lease_token,
        metrics=body.metrics,
        caller=caller,
        refill_inline=False,
    )
    metrics.completed.inc()
    await _refill_if_due(database, settled)
    if settled.has_artifacts:  # most tasks leave none: no clean-up, not even a read
        cleanup.collect_in_background(database.engine, artifacts, settled.task.experiment_id)
    return task_public(settled.task, settled.history)


@router.post(
    "/{task_id}/complete-and-claim",
    summary="Complete a task and claim the slot's next one",
    description="`/complete` and then, in the same request, the claim of the slot's next task "
    "(a busy slot needs two requests per task: this one and, for long evaluations, its "
    "heartbeats). The completion is exactly `/complete`'s (idempotent: the same token again "
    "answers the same task and records nothing new); once it is committed, and once the "
    "refill it made due has run (as `/complete` waits for it), up to `claim.max_tasks` "
    "tasks are leased to `claim.worker_id` as `/claim-batch` picks them, without waiting: "
    "`next` is empty when nothing fitting was pending (long-poll `/claim` then), or when the "
    "claim is refused after the completion (the worker holds all its declared `slots`, or is "
    "not registered: `/claim` says which). A refused completion (404, 409) claims nothing. "
    "The worker's credential must name `claim.worker_id` (403 otherwise, before anything is "
    "recorded).\n\nWorker or admin token.",
    response_description="The completed task, and the tasks now leased to the worker (maybe none).",
    responses=COMPLETE_ERRORS,
    openapi_extra=extra(invalid=LEASE_BODY, examples=examples.COMPLETE_AND_CLAIM),
)
async def complete_and_claim(
    task_id: TaskId,
    body: CompleteAndClaimRequest,
    database: DatabaseDep,
    metrics: MetricsDep,
    caller: CallerWorker,
    artifacts: ArtifactStoreDep,
) -> CompleteAndClaimAnswer:
    store.check_claimant(caller, body.claim.worker_id)  # before anything is recorded
    task = await complete(task_id, body, database, metrics, caller, artifacts)
    claimed = await database.run(_claim_next, body.claim, caller)
    metrics.claims.inc(len(claimed))
    return CompleteAndClaimAnswer(task=task, next=claimed)


def _claim_next(engine: Engine, claim: NextClaim, caller: int | None) -> list[ClaimedTask]:
    """The claim after a committed completion: what fits now, or nothing. Its refusals (a
    worker without a free slot or without a registration) must not turn the recorded
    completion into an error the worker would retry: its next `/claim` says why."""
    try:
        found = _claim_once(engine, claim, claim.max_tasks, caller)
    except (ConflictError, NotFoundError):
        return []
    return [] if isinstance(found, store.Miss) else found


@router.post(
    "/{task_id}/fail",
    summary="Fail a task",
    description="Report that the task could not run. `retryable` (the default) puts it back to "
    "pending with attempt + 1 while attempts remain, for any worker; otherwise, or when "
    "attempts are exhausted, it fails for good and the optimizer is told.\n\n"
    "Worker or admin token.",
    response_description="The task: pending again, or failed.",
    responses=errors(
        worker=True,
        body=True,
        status_404=NO_TASK,
        status_409=(STALE + " Or the task is no longer running.", STALE_EXAMPLE),
    ),
    openapi_extra=extra(invalid=LEASE_BODY, examples=examples.FAIL),
)
async def fail(
    task_id: TaskId,
    body: FailRequest,
    database: DatabaseDep,
    metrics: MetricsDep,
    caller: CallerWorker,
    artifacts: ArtifactStoreDep,
) -> TaskPublic:
    settled = await database.run(
        store.fail,
        task_id=task_id,
        lease_token=body.lease_token,
        error=body.error,
        retryable=body.retryable,
        environment=body.environment,
        caller=caller,
        refill_inline=False,
    )
    metrics.outcomes.labels(outcome=settled.task.state).inc()
    await _refill_if_due(database, settled)
    if settled.task.state == TaskState.FAILED and settled.has_artifacts:  # its checkpoints go
        cleanup.collect_in_background(database.engine, artifacts, settled.task.experiment_id)
    return task_public(settled.task, settled.history)


async def _refill_if_due(database: Database, settled: store.Settled) -> None:
    """The refill the outcome made due, on the refill threads, before answering: the worker's
    next claim then finds the tasks it asked for (and outcomes reach the optimizer in the order
    they were reported)."""
    if settled.refill_due:
        await database.refill(store.refill_after, settled.task.experiment_id)
