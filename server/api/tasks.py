"""Tasks (worker token): long-poll claim, heartbeat, complete, fail.

Wire contract with `morphml-worker` (ids are integers; times are ISO 8601 UTC, database clock):

- `POST /v1/tasks/claim` {worker_id, wait_seconds (0..60, default 30), free: {gpus, gpu_memory_mb}
  (default: everything the worker registered), labels (default: the registered ones)}
  -> 200 {id, experiment_id, candidate: {architecture, budget, meta}, evaluator: {kind, params},
  objectives, budget, attempt, lease_token, lease_expires_at, lease_seconds}, or 204 when nothing
  fit within the wait; 404 for an unregistered worker_id.
- `POST /v1/tasks/{id}/heartbeat` {lease_token, progress, step, metrics}
  -> 200 {action: "continue" | "stop", reason, lease_expires_at}. On "stop" the task is already
  pruned or cancelled on the server: drop it. 409 for a stale token, 404 for an unknown task.
- `POST /v1/tasks/{id}/complete` {lease_token, metrics} -> 200 the task; the same token again gets
  the same answer and records nothing new; 409 for a stale token (or a task no longer running).
- `POST /v1/tasks/{id}/fail` {lease_token, error, retryable} -> 200 the task, pending again with
  attempt + 1 or failed when attempts are exhausted; 409 for a stale token.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Path, Request, Response, status
from sqlalchemy.engine import Engine

from server.deps import DatabaseDep, MetricsDep, SettingsDep, WorkerAuth
from server.experiments import task_public
from server.metrics import ServerMetrics
from server.schemas import (
    ClaimedTask,
    ClaimRequest,
    CompleteRequest,
    EvaluatorPublic,
    FailRequest,
    HeartbeatAnswer,
    HeartbeatRequest,
    ObjectiveSpec,
    TaskPublic,
)
from server.store import tasks as store
from server.wakeup import ClaimWaker, Hops, waker_for

router = APIRouter(prefix="/v1/tasks", tags=["tasks"], dependencies=[WorkerAuth])
TaskId = Annotated[int, Path(ge=1, le=2**31 - 1)]


@router.post(
    "/claim",
    response_model=ClaimedTask,
    responses={204: {"description": "Nothing fitting became available within wait_seconds"}},
)
async def claim(
    body: ClaimRequest,
    request: Request,
    database: DatabaseDep,
    settings: SettingsDep,
    metrics: MetricsDep,
) -> ClaimedTask | Response:
    """Long-poll: a thread and a connection are held only while one claim attempt runs."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + body.wait_seconds
    waker = waker_for(database.engine)
    hops: Hops | None = None  # set while we hold a wakeup
    while True:
        # Park before trying, so a task announced during the attempt still wakes us.
        waiter = waker.park()
        try:
            claimed = await database.run(_claim_once, body)
            if hops is not None and isinstance(claimed, store.Miss) and claimed.unfit:
                waker.pass_on(hops)  # the task we were woken for may fit another worker
            remaining = deadline - loop.time()
            if isinstance(claimed, ClaimedTask) or remaining <= 0:
                break
            if await request.is_disconnected():
                break
        except BaseException:
            waker.unpark(waiter)
            raise
        hops = await _wait(waker, waiter, min(remaining, settings.claim_repoll_seconds))
    waker.unpark(waiter)
    if isinstance(claimed, ClaimedTask):
        metrics.claims.inc()
        return claimed
    metrics.empty_claims.inc()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


async def _wait(waker: ClaimWaker, waiter: asyncio.Future[Hops], timeout: float) -> Hops | None:
    """The wakeup's hops, or None when the timeout (a safety re-poll) came first."""
    try:
        return await asyncio.wait_for(waiter, timeout=timeout)
    except TimeoutError:
        waker.unpark(waiter)
        return None


def _claim_once(engine: Engine, body: ClaimRequest) -> ClaimedTask | store.Miss:
    free = body.free
    found = store.claim(
        engine,
        worker_id=body.worker_id,
        free_gpus=free.gpus if free else None,
        free_gpu_memory_mb=free.gpu_memory_mb if free else None,
        labels=body.labels,
    )
    if isinstance(found, store.Miss):
        return found
    task = found.task
    assert (
        task.id is not None and task.lease_token is not None and task.lease_expires_at is not None
    )
    return ClaimedTask(
        id=task.id,
        experiment_id=task.experiment_id,
        candidate=task.candidate,
        evaluator=EvaluatorPublic.model_validate(found.spec["evaluator"]),
        objectives=[ObjectiveSpec.model_validate(o) for o in found.spec["objectives"]],
        budget=task.budget,
        attempt=task.attempt,
        lease_token=task.lease_token,
        lease_expires_at=task.lease_expires_at,
        lease_seconds=found.lease_seconds,
    )


@router.post("/{task_id}/heartbeat")
async def heartbeat(
    task_id: TaskId, body: HeartbeatRequest, database: DatabaseDep, metrics: MetricsDep
) -> HeartbeatAnswer:
    return await database.run(_heartbeat, task_id, body, metrics)


def _heartbeat(
    engine: Engine, task_id: int, body: HeartbeatRequest, metrics: ServerMetrics
) -> HeartbeatAnswer:
    beat = store.heartbeat(
        engine,
        task_id=task_id,
        lease_token=body.lease_token,
        progress=body.progress,
        step=body.step,
        metrics=body.metrics,
    )
    if beat.pruned:
        metrics.outcomes.labels(outcome="pruned").inc()
    if beat.stop_reason is not None:
        return HeartbeatAnswer(action="stop", reason=beat.stop_reason, lease_expires_at=None)
    return HeartbeatAnswer(action="continue", reason=None, lease_expires_at=beat.lease_expires_at)


@router.post("/{task_id}/complete")
async def complete(
    task_id: TaskId, body: CompleteRequest, database: DatabaseDep, metrics: MetricsDep
) -> TaskPublic:
    settled = await database.run(
        store.complete, task_id=task_id, lease_token=body.lease_token, metrics=body.metrics
    )
    metrics.completed.inc()
    return task_public(settled.task, settled.history)


@router.post("/{task_id}/fail")
async def fail(
    task_id: TaskId, body: FailRequest, database: DatabaseDep, metrics: MetricsDep
) -> TaskPublic:
    settled = await database.run(
        store.fail,
        task_id=task_id,
        lease_token=body.lease_token,
        error=body.error,
        retryable=body.retryable,
    )
    metrics.outcomes.labels(outcome=settled.task.state).inc()
    return task_public(settled.task, settled.history)
