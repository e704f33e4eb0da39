"""The background reaper: expired leases back to pending, silent workers offline, budgets."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from fastapi.concurrency import run_in_threadpool
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from server.artifacts import ArtifactStore, StoreError, cleanup
from server.config import Settings
from server.db import read
from server.metrics import ServerMetrics
from server.store import sql as S
from server.store.refill import refill
from server.store.tasks import requeue_expired
from server.store.workers import mark_silent_offline

log = logging.getLogger("morphml.server")


async def reap_until(
    stop: asyncio.Event,
    engine: Engine,
    settings: Settings,
    metrics: ServerMetrics,
    artifacts: ArtifactStore | None = None,
) -> None:
    """A pass every `reaper_interval_seconds` until `stop` is set; a failed pass is tried again.

    Stopping between passes, never by cancellation, means no pass is abandoned in its thread
    holding a pooled connection while the engine is disposed.
    """
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=settings.reaper_interval_seconds)
            return
        try:
            expired = await run_in_threadpool(reap_once, engine, settings, artifacts)
        except (SQLAlchemyError, StoreError) as exc:
            log.warning("reaper pass failed: %s", exc)
            continue
        metrics.lease_expiries.inc(expired)


def reap_once(engine: Engine, settings: Settings, artifacts: ArtifactStore | None = None) -> int:
    """Requeue expired leases, mark silent workers offline, feed/finish running experiments,
    delete finished tasks' checkpoints, retry failed artifact deletes and, about once an hour,
    delete objects of the store that no artifact names."""
    expired = requeue_expired(engine)
    mark_silent_offline(engine, silent_seconds=settings.worker_offline_seconds)
    feed_running_experiments(engine)
    if artifacts is not None:
        cleanup.sweep(engine, artifacts)
        cleanup.sweep_unnamed_if_due(engine, artifacts, time.monotonic())
    if expired:
        log.info("reaper: %d expired lease(s) taken back", expired)
    return expired


def feed_running_experiments(engine: Engine) -> None:
    """Safety net and time budget: top up every running experiment, completing finished ones."""
    with read(engine) as connection:
        ids = connection.execute(S.RUNNING_EXPERIMENT_IDS).scalars().all()
    for experiment_id in ids:
        refill(engine, experiment_id)
