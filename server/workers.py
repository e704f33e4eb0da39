"""Worker services: registration (through the store) and the admin listing with current tasks."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from server.db import db_now, read_session
from server.models import TASK, WORKER, TaskState, Worker, WorkerStatus
from server.schemas import WorkerCreate, WorkerPublic, WorkersPublic
from server.store import workers as store

# Beyond two poll periods: a loaded machine's late re-poll is not a death.
SILENCE_SLACK_SECONDS = 10.0


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
        now = session.scalar(sa.select(db_now()))
        running = session.execute(
            sa.select(TASK.worker_id, TASK.id, TASK.lease_expires_at).where(
                TASK.state == TaskState.RUNNING, TASK.worker_id.in_([w.id for w in workers])
            )
        ).all()
        by_worker: dict[int, list[int]] = {}
        leased: set[int] = set()
        for worker_id, task_id, expires in running:
            by_worker.setdefault(worker_id, []).append(task_id)
            if expires is not None and now is not None and expires > now:
                leased.add(worker_id)
        data = [
            _public(w, by_worker.get(w.id or 0, []), _status(w, now, (w.id or 0) in leased))
            for w in workers
        ]
        return WorkersPublic(data=data, count=count)


def _status(worker: Worker, now: datetime | None, holds_live_lease: bool) -> str:
    """Online while it polls or holds a live lease. A worker that long-polls claims again every
    `poll_seconds` (each attempt is a sign of life); silent for two of those (and some slack),
    holding no lease, it is offline, whatever the reaper last wrote."""
    if holds_live_lease or worker.poll_seconds is None or now is None:
        return worker.status
    if worker.last_seen_at is None:
        return WorkerStatus.OFFLINE
    silent = (now - worker.last_seen_at).total_seconds()
    quiet_enough = silent <= 2 * worker.poll_seconds + SILENCE_SLACK_SECONDS
    return WorkerStatus.ONLINE if quiet_enough else WorkerStatus.OFFLINE


def _public(worker: Worker, current_tasks: list[int], status: str) -> WorkerPublic:
    fields = {**worker.model_dump(), "current_tasks": current_tasks, "status": status}
    return WorkerPublic.model_validate(fields)
