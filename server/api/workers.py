"""Workers: register (worker token) and list (admin)."""

from __future__ import annotations

from fastapi import APIRouter, Query, status

from server.api import examples
from server.api.responses import errors, extra
from server.auth import worker_credential
from server.deps import AdminAuth, DatabaseDep, SettingsDep, WorkerAuth
from server.schemas import WorkerCreate, WorkerPublic, WorkersPublic
from server.workers import list_workers, register_worker

router = APIRouter(prefix="/v1/workers", tags=["workers"])


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    dependencies=[WorkerAuth],
    summary="Register a worker",
    description="A `morphml-worker` agent announces itself when it starts: its name, host, "
    "resources (CPUs, memory, GPUs) and labels. Each registration is a new worker with a new id "
    "(a restarted agent registers again); claims name that id. Experiments that need GPUs, GPU "
    "memory or labels are only offered to workers that have them.\n\nWorker or admin token.",
    response_description="The worker, with its id.",
    responses=errors(worker=True, body=True),
    openapi_extra=extra(
        invalid="The body does not fit the schema (`detail` lists each field).",
        examples=examples.WORKER,
    ),
)
async def register(
    body: WorkerCreate, database: DatabaseDep, settings: SettingsDep
) -> WorkerPublic:
    worker = await database.run(register_worker, body=body)
    # The worker's own credential: its later calls carry it, and are bound to this worker.
    return worker.model_copy(update={"credential": worker_credential(settings, worker.id)})


@router.get(
    "",
    name="list",
    dependencies=[AdminAuth],
    summary="List workers",
    description="Registered workers, oldest first, a page at a time (`count` is the total): "
    "their resources, labels, status (`online`, or `offline` after "
    "`MORPHML_WORKER_OFFLINE_SECONDS` without a call) and the tasks they are running."
    "\n\nAdmin token.",
    response_description="A page of workers.",
    responses=errors(admin=True),
    openapi_extra=extra(invalid="`offset` or `limit` out of range."),
)
async def list_all(
    database: DatabaseDep,
    offset: int = Query(0, ge=0, le=2**31, description="How many workers to skip."),
    limit: int = Query(100, ge=1, le=1000, description="At most this many workers."),
) -> WorkersPublic:
    return await database.run(list_workers, offset=offset, limit=limit)
