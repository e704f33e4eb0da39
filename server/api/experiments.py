"""Experiments (admin): create from a spec, list, read, lifecycle, tasks, best and Pareto front."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, status

from server import experiments as service
from server.deps import AdminAuth, EngineDep
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
def create(spec: ExperimentCreate, engine: EngineDep) -> ExperimentPublic:
    return service.create_experiment(engine, spec=spec)


@router.get("", name="list")
def list_all(
    engine: EngineDep, offset: Offset = 0, limit: Limit = 50, status: ExperimentStatus | None = None
) -> ExperimentsPublic:
    return service.list_experiments(engine, offset=offset, limit=limit, status=status)


@router.get("/{experiment_id}")
def get(experiment_id: ExperimentId, engine: EngineDep) -> ExperimentPublic:
    return service.get_experiment(engine, experiment_id=experiment_id)


@router.post("/{experiment_id}/pause")
def pause(experiment_id: ExperimentId, engine: EngineDep) -> ExperimentPublic:
    return service.change_status(engine, experiment_id=experiment_id, action="pause")


@router.post("/{experiment_id}/resume")
def resume(experiment_id: ExperimentId, engine: EngineDep) -> ExperimentPublic:
    return service.change_status(engine, experiment_id=experiment_id, action="resume")


@router.post("/{experiment_id}/cancel")
def cancel(experiment_id: ExperimentId, engine: EngineDep) -> ExperimentPublic:
    return service.change_status(engine, experiment_id=experiment_id, action="cancel")


@router.get("/{experiment_id}/tasks")
def tasks(
    experiment_id: ExperimentId,
    engine: EngineDep,
    state: TaskState | None = None,
    offset: Offset = 0,
    limit: Limit = 100,
) -> TasksPublic:
    return service.list_tasks(
        engine, experiment_id=experiment_id, state=state, offset=offset, limit=limit
    )


@router.get("/{experiment_id}/best")
def best(experiment_id: ExperimentId, engine: EngineDep) -> TaskPublic:
    return service.best_task(engine, experiment_id=experiment_id)


@router.get("/{experiment_id}/pareto")
def pareto(experiment_id: ExperimentId, engine: EngineDep) -> ParetoPublic:
    return service.pareto_front(engine, experiment_id=experiment_id)
