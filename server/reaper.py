"""The background reaper: expired leases back to pending, silent workers offline, budgets checked."""

from __future__ import annotations

import asyncio
import logging

import sqlalchemy as sa
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from server.config import Settings
from server.db import transaction
from server.metrics import ServerMetrics
from server.models import Experiment, ExperimentStatus
from server.orchestrator import feed_locked, lock_experiment
from server.queue import mark_workers_offline, requeue_expired

log = logging.getLogger("morphml.server")


async def reap_forever(engine: Engine, settings: Settings, metrics: ServerMetrics) -> None:
    """One pass every `reaper_interval_seconds`; a failing pass is logged and retried next period."""
    while True:
        await asyncio.sleep(settings.reaper_interval_seconds)
        try:
            expired = await run_in_threadpool(reap_once, engine, settings)
        except SQLAlchemyError as exc:
            log.warning("reaper pass failed: %s", exc)
            continue
        metrics.lease_expiries.inc(expired)


def reap_once(engine: Engine, settings: Settings) -> int:
    """Requeue expired leases, mark silent workers offline, feed/finish running experiments."""
    expired = requeue_expired(engine)
    mark_workers_offline(engine, silent_seconds=settings.worker_offline_seconds)
    feed_running_experiments(engine)
    if expired:
        log.info("reaper: %d expired lease(s) taken back", expired)
    return expired


def feed_running_experiments(engine: Engine) -> None:
    """Safety net and time budget: top up every running experiment, completing finished ones."""
    with transaction(engine) as session:
        ids = session.scalars(
            sa.select(Experiment.id).where(Experiment.status == ExperimentStatus.RUNNING)
        ).all()
    for experiment_id in ids:
        assert experiment_id is not None
        with transaction(engine) as session:
            feed_locked(session, lock_experiment(session, experiment_id))
