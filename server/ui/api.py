"""The dashboard's data endpoints (admin): `GET /ui/api/...`, JSON shaped for the pages.

They are the dashboard's own and left out of openapi.json: the pages and these endpoints ship
together and change together; scripts use `/v1`. The pages' actions (pause, resume, cancel) call
the `/v1` endpoints themselves.

Reads run at most `READ_THREADS` at a time (tables and charts apart) on worker threads of their
own, never on the database executor that serves the workers' claims and results (one thread on
SQLite): a dashboard left open on a big experiment must not slow the fleet.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Annotated, Any, Literal

import anyio
from fastapi import APIRouter, Depends, Path, Query, Request

from server.deps import AdminAuth, EngineDep
from server.experiments import get_experiment
from server.models import ExperimentStatus, TaskState
from server.ui import charts, listings, task_view

READ_THREADS = 2

router = APIRouter(
    prefix="/ui/api", tags=["dashboard"], dependencies=[AdminAuth], include_in_schema=False
)

Id = Annotated[int, Path(ge=1, le=2**31 - 1)]
Offset = Annotated[int, Query(ge=0, le=2**31 - 1)]
SortKey = Literal["id", "state", "value", "attempt", "worker", "finished"]


def _limiter(request: Request, name: str) -> anyio.CapacityLimiter:
    """The app's limiter `name` (one per app: a limiter belongs to its event loop)."""
    limiter: anyio.CapacityLimiter | None = getattr(request.app.state, name, None)
    if limiter is None:
        limiter = anyio.CapacityLimiter(READ_THREADS)
        setattr(request.app.state, name, limiter)
    return limiter


async def _chart_reads(request: Request) -> anyio.CapacityLimiter:
    """Charts (a scan of the experiment's completed tasks) queue on their own threads..."""
    return _limiter(request, "ui_chart_reads")


async def _row_reads(request: Request) -> anyio.CapacityLimiter:
    """...so the tables (an index range, a page of rows) never wait behind a big chart."""
    return _limiter(request, "ui_row_reads")


Reads = Annotated[anyio.CapacityLimiter, Depends(_row_reads)]
ChartReads = Annotated[anyio.CapacityLimiter, Depends(_chart_reads)]


async def _run(limiter: anyio.CapacityLimiter, function: Callable[..., Any], **kwargs: Any) -> Any:
    return await anyio.to_thread.run_sync(partial(function, **kwargs), limiter=limiter)


@router.get("/experiments")
async def experiments(
    engine: EngineDep,
    reads: Reads,
    status: ExperimentStatus | None = None,
    offset: Offset = 0,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> Any:
    return await _run(
        reads, listings.experiments, engine=engine, status=status, offset=offset, limit=limit
    )


@router.get("/experiments/{experiment_id}")
async def experiment(experiment_id: Id, engine: EngineDep, reads: Reads) -> Any:
    return await _run(reads, get_experiment, engine=engine, experiment_id=experiment_id)


@router.get("/experiments/{experiment_id}/tasks")
async def tasks(
    experiment_id: Id,
    engine: EngineDep,
    reads: Reads,
    state: TaskState | None = None,
    sort: SortKey = "id",
    order: Literal["asc", "desc"] = "desc",
    offset: Offset = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> Any:
    return await _run(
        reads,
        listings.task_page,
        engine=engine,
        experiment_id=experiment_id,
        state=state,
        sort=sort,
        descending=order == "desc",
        offset=offset,
        limit=limit,
    )


@router.get("/experiments/{experiment_id}/failures")
async def failures(experiment_id: Id, engine: EngineDep, reads: ChartReads) -> Any:
    return await _run(reads, listings.failures, engine=engine, experiment_id=experiment_id)


@router.get("/experiments/{experiment_id}/convergence")
async def convergence(experiment_id: Id, engine: EngineDep, reads: ChartReads) -> Any:
    return await _run(reads, charts.convergence, engine=engine, experiment_id=experiment_id)


@router.get("/experiments/{experiment_id}/pareto")
async def pareto(experiment_id: Id, engine: EngineDep, reads: ChartReads) -> Any:
    return await _run(reads, charts.pareto, engine=engine, experiment_id=experiment_id)


@router.get("/experiments/{experiment_id}/importance")
async def importance(experiment_id: Id, engine: EngineDep, reads: ChartReads) -> Any:
    return await _run(reads, charts.importance, engine=engine, experiment_id=experiment_id)


@router.get("/experiments/{experiment_id}/curves")
async def curves(experiment_id: Id, engine: EngineDep, reads: ChartReads) -> Any:
    return await _run(reads, charts.curves, engine=engine, experiment_id=experiment_id)


@router.get("/tasks/{task_id}")
async def task(task_id: Id, engine: EngineDep, reads: Reads) -> Any:
    return await _run(reads, task_view.task_detail, engine=engine, task_id=task_id)


@router.get("/workers")
async def workers(engine: EngineDep, reads: Reads) -> Any:
    return await _run(reads, listings.workers, engine=engine)
