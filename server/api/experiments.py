"""Experiments (admin): create from a spec, list, read, lifecycle, tasks, best and Pareto front.

Like every route, the handlers are `async` and run their one service function on the database
executor (`server.db.Database`), never on the framework's thread pool."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, status

from server import experiments as service
from server.deps import AdminAuth, DatabaseDep
from server.models import ExperimentStatus, TaskState
from server.schemas import (
    ExperimentCreate,
    ExperimentPublic,
    ExperimentsPublic,
    ParetoPublic,
    TaskPublic,
    TasksPublic,
)

router = APIRouter(prefix="/v1/experiments", tags=["experiments"], dependencies=[AdminAuth])

ExperimentId = Annotated[int, Path(ge=1, le=2**31 - 1)]
Offset = Annotated[int, Query(ge=0, le=2**31 - 1)]
Limit = Annotated[int, Query(ge=1, le=1000)]


@router.post("", status_code=status.HTTP_201_CREATED)
async def create(spec: ExperimentCreate, database: DatabaseDep) -> ExperimentPublic:
    return await database.run(service.create_experiment, spec=spec)


@router.get("", name="list")
async def list_all(
    database: DatabaseDep,
    offset: Offset = 0,
    limit: Limit = 50,
    status: ExperimentStatus | None = None,
) -> ExperimentsPublic:
    return await database.run(service.list_experiments, offset=offset, limit=limit, status=status)


@router.get("/{experiment_id}")
async def get(experiment_id: ExperimentId, database: DatabaseDep) -> ExperimentPublic:
    return await database.run(service.get_experiment, experiment_id=experiment_id)


@router.post("/{experiment_id}/pause")
async def pause(experiment_id: ExperimentId, database: DatabaseDep) -> ExperimentPublic:
    return await database.run(service.change_status, experiment_id=experiment_id, action="pause")


@router.post("/{experiment_id}/resume")
async def resume(experiment_id: ExperimentId, database: DatabaseDep) -> ExperimentPublic:
    return await database.run(service.change_status, experiment_id=experiment_id, action="resume")


@router.post("/{experiment_id}/cancel")
async def cancel(experiment_id: ExperimentId, database: DatabaseDep) -> ExperimentPublic:
    return await database.run(service.change_status, experiment_id=experiment_id, action="cancel")


@router.get("/{experiment_id}/tasks")
async def tasks(
    experiment_id: ExperimentId,
    database: DatabaseDep,
    state: TaskState | None = None,
    offset: Offset = 0,
    limit: Limit = 100,
) -> TasksPublic:
    return await database.run(
        service.list_tasks, experiment_id=experiment_id, state=state, offset=offset, limit=limit
    )


@router.get("/{experiment_id}/best")
async def best(experiment_id: ExperimentId, database: DatabaseDep) -> TaskPublic:
    return await database.run(service.best_task, experiment_id=experiment_id)


@router.get("/{experiment_id}/pareto")
async def pareto(experiment_id: ExperimentId, database: DatabaseDep) -> ParetoPublic:
    return await database.run(service.pareto_front, experiment_id=experiment_id)
