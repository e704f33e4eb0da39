"""Experiments (admin): create from a spec, list, read, lifecycle, tasks, best and Pareto front.

Like every route, the handlers are `async` and run their one service function on the database
executor (`server.db.Database`), never on the framework's thread pool."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, status

from server import experiments as service
from server.api import examples
from server.api.responses import errors, extra
from server.db import Database
from server.deps import AdminAuth, DatabaseDep, SettingsDep
from server.models import ExperimentStatus, TaskState
from server.schemas import (
    ExperimentCreate,
    ExperimentPublic,
    ExperimentsPublic,
    ParetoPublic,
    TaskPublic,
    TasksPublic,
)
from server.store.refill import refill

router = APIRouter(prefix="/v1/experiments", tags=["experiments"], dependencies=[AdminAuth])

ExperimentId = Annotated[int, Path(ge=1, le=2**31 - 1, description="The experiment's id.")]
Offset = Annotated[int, Query(ge=0, le=2**31 - 1, description="How many items to skip.")]
Limit = Annotated[int, Query(ge=1, le=1000, description="At most this many items.")]

NO_EXPERIMENT = ("No experiment has this id.", "experiment 7 not found")
BAD_ID = "The experiment id is not an integer in [1, 2^31 - 1]."
LIFECYCLE = (
    "\n\nAdmin token. Lifecycle: `running` -> `paused` (pause) -> `running` (resume); `running` "
    "or `paused` -> `cancelled` (cancel; its pending and running tasks are cancelled, and their "
    "workers are told to stop at their next heartbeat). An experiment also ends by itself: "
    "`completed` at its budget, `failed` when its optimizer raises."
)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Create an experiment",
    description="Submit a search: a search space, an optimizer, objectives, an evaluator, a "
    "budget and how many tasks to keep in flight (`parallelism`). The spec is validated in full "
    "first (the space, optimizer and pruner are built; the evaluator kind must be known): "
    "nothing is stored when it is refused. The experiment starts `running` with its first "
    "`parallelism` tasks queued for workers.\n\nAdmin token.",
    response_description="The experiment as stored, its first tasks queued.",
    responses=errors(admin=True, body=True),
    openapi_extra=extra(
        invalid="The body does not fit the schema (`detail`: a list, each with the field's "
        "`loc`), or the spec cannot run: an unknown evaluator kind or optimizer, a search space "
        "that cannot be built or whose shapes never flow, a space or parallelism over the "
        "server's limits (`detail`: one message naming the field).",
        examples=examples.EXPERIMENT,
    ),
)
async def create(
    spec: ExperimentCreate, database: DatabaseDep, settings: SettingsDep
) -> ExperimentPublic:
    # The library's work (building the space and optimizer to validate, the first ask) runs on
    # the refill threads; the database's on the database threads.
    limits = settings.spec_limits
    values = await database.refill(service.validate_experiment, spec=spec, limits=limits)
    experiment_id = await database.run(service.insert_experiment, values=values)
    await database.refill(refill, experiment_id)
    return await database.run(service.get_experiment, experiment_id=experiment_id)


@router.get(
    "",
    name="list",
    summary="List experiments",
    description="Experiments, newest first, a page at a time (`count` is the total), "
    "optionally only those in one status.\n\nAdmin token.",
    response_description="A page of experiments.",
    responses=errors(admin=True),
    openapi_extra=extra(invalid="`offset`, `limit` or `status` out of range."),
)
async def list_all(
    database: DatabaseDep,
    offset: Offset = 0,
    limit: Limit = 50,
    status: ExperimentStatus | None = None,
) -> ExperimentsPublic:
    return await database.run(service.list_experiments, offset=offset, limit=limit, status=status)


@router.get(
    "/{experiment_id}",
    summary="Get an experiment",
    description="The experiment: its status, spec, task counts by state, best result so far "
    "and timestamps.\n\nAdmin token.",
    response_description="The experiment.",
    responses=errors(admin=True, status_404=NO_EXPERIMENT),
    openapi_extra=extra(invalid=BAD_ID),
)
async def get(experiment_id: ExperimentId, database: DatabaseDep) -> ExperimentPublic:
    return await database.run(service.get_experiment, experiment_id=experiment_id)


@router.post(
    "/{experiment_id}/pause",
    summary="Pause an experiment",
    description="Stop handing out its tasks and asking its optimizer for more; tasks already "
    "running finish and are recorded." + LIFECYCLE,
    response_description="The experiment in its new status.",
    responses=errors(
        admin=True,
        status_404=NO_EXPERIMENT,
        status_409=(
            "The experiment is not running (e.g. already finished).",
            "cannot pause an experiment that is completed",
        ),
    ),
    openapi_extra=extra(invalid=BAD_ID),
)
async def pause(experiment_id: ExperimentId, database: DatabaseDep) -> ExperimentPublic:
    return await _change_status(database, experiment_id, "pause")


@router.post(
    "/{experiment_id}/resume",
    summary="Resume an experiment",
    description="Hand out its pending tasks again, and tell the optimizer the results that "
    "arrived while it was paused." + LIFECYCLE,
    response_description="The experiment in its new status.",
    responses=errors(
        admin=True,
        status_404=NO_EXPERIMENT,
        status_409=(
            "The experiment is not paused (e.g. already finished).",
            "cannot resume an experiment that is running",
        ),
    ),
    openapi_extra=extra(invalid=BAD_ID),
)
async def resume(experiment_id: ExperimentId, database: DatabaseDep) -> ExperimentPublic:
    return await _change_status(database, experiment_id, "resume")


@router.post(
    "/{experiment_id}/cancel",
    summary="Cancel an experiment",
    description="Stop it for good: pending and running tasks are cancelled." + LIFECYCLE,
    response_description="The experiment in its new status.",
    responses=errors(
        admin=True,
        status_404=NO_EXPERIMENT,
        status_409=(
            "The experiment is not running or paused (e.g. already finished).",
            "cannot cancel an experiment that is completed",
        ),
    ),
    openapi_extra=extra(invalid=BAD_ID),
)
async def cancel(experiment_id: ExperimentId, database: DatabaseDep) -> ExperimentPublic:
    return await _change_status(database, experiment_id, "cancel")


@router.get(
    "/{experiment_id}/tasks",
    summary="List an experiment's tasks",
    description="Its tasks (one per evaluated candidate and budget), oldest first, a page at a "
    "time, optionally only those in one state; each with its candidate, metrics, "
    "intermediate reports and lease.\n\nAdmin token.",
    response_description="A page of the experiment's tasks.",
    responses=errors(admin=True, status_404=NO_EXPERIMENT),
    openapi_extra=extra(invalid="An id, `state`, `offset` or `limit` out of range."),
)
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


@router.get(
    "/{experiment_id}/best",
    summary="Get an experiment's best task",
    description="The completed task with the best value of the first objective.\n\nAdmin token.",
    response_description="The best task.",
    responses=errors(
        admin=True,
        status_404=(
            NO_EXPERIMENT[0] + " Or no task has completed with the objective's metric yet.",
            "experiment 7 has no completed task with its objective yet",
        ),
    ),
    openapi_extra=extra(invalid=BAD_ID),
)
async def best(experiment_id: ExperimentId, database: DatabaseDep) -> TaskPublic:
    return await database.run(service.best_task, experiment_id=experiment_id)


@router.get(
    "/{experiment_id}/pareto",
    summary="Get an experiment's Pareto front",
    description="The completed tasks that no other completed task beats on every objective "
    "(for several objectives, e.g. accuracy against size); with one objective, the best "
    "tasks.\n\nAdmin token.",
    response_description="The objectives, and the tasks on the front.",
    responses=errors(admin=True, status_404=NO_EXPERIMENT),
    openapi_extra=extra(invalid=BAD_ID),
)
async def pareto(experiment_id: ExperimentId, database: DatabaseDep) -> ParetoPublic:
    return await database.run(service.pareto_front, experiment_id=experiment_id)


async def _change_status(database: Database, experiment_id: int, action: str) -> ExperimentPublic:
    """The change on a database thread; the refill a resume makes due on the refill threads."""
    due = await database.run(service.change_status, experiment_id=experiment_id, action=action)
    if due:
        await database.refill(refill, experiment_id)
    return await database.run(service.get_experiment, experiment_id=experiment_id)
