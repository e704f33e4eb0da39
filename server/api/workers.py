"""Workers: register (worker token) and list (admin)."""

from __future__ import annotations

from fastapi import APIRouter, Query, status

from server.deps import AdminAuth, DatabaseDep, WorkerAuth
from server.schemas import WorkerCreate, WorkerPublic, WorkersPublic
from server.workers import list_workers, register_worker

router = APIRouter(prefix="/v1/workers", tags=["workers"])


@router.post("", status_code=status.HTTP_201_CREATED, dependencies=[WorkerAuth])
async def register(body: WorkerCreate, database: DatabaseDep) -> WorkerPublic:
    return await database.run(register_worker, body=body)


@router.get("", name="list", dependencies=[AdminAuth])
async def list_all(
    database: DatabaseDep,
    offset: int = Query(0, ge=0, le=2**31),
    limit: int = Query(100, ge=1, le=1000),
) -> WorkersPublic:
    return await database.run(list_workers, offset=offset, limit=limit)
