"""Worker services: registration (through the store) and the admin listing with current tasks."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from server.db import read_session
from server.models import TASK, WORKER, TaskState, Worker
from server.schemas import WorkerCreate, WorkerPublic, WorkersPublic
from server.store import workers as store


def register_worker(engine: Engine, *, body: WorkerCreate) -> WorkerPublic:
    worker = store.register(
        engine,
        name=body.name,
        host=body.host,
        resources=body.resources.model_dump(),
        labels=body.labels,
    )
    return WorkerPublic.model_validate({**worker._mapping, "current_tasks": []})


def list_workers(engine: Engine, *, offset: int, limit: int) -> WorkersPublic:
    with read_session(engine) as session:
        count = session.scalar(sa.select(sa.func.count()).select_from(Worker)) or 0
        workers = session.scalars(
            sa.select(Worker).order_by(WORKER.id).offset(offset).limit(limit)
        ).all()
        running = session.execute(
            sa.select(TASK.worker_id, TASK.id).where(
                TASK.state == TaskState.RUNNING, TASK.worker_id.in_([w.id for w in workers])
            )
        ).all()
        by_worker: dict[int, list[int]] = {}
        for worker_id, task_id in running:
            by_worker.setdefault(worker_id, []).append(task_id)
        return WorkersPublic(
            data=[_public(w, by_worker.get(w.id or 0, [])) for w in workers], count=count
        )


def _public(worker: Worker, current_tasks: list[int]) -> WorkerPublic:
    return WorkerPublic.model_validate({**worker.model_dump(), "current_tasks": current_tasks})
