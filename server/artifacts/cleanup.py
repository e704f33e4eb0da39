"""Deleting the bytes the database marked `deleting`: after the commit that marked them, best
effort; a row left behind (the store failed) is retried by the reaper."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable

from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from server.artifacts.base import ArtifactStore, StoreError
from server.store import artifacts as rows
from server.store.artifacts import Doomed

log = logging.getLogger("morphml.server")
# Deletions started by requests run in the background (a store that hangs must not slow the
# answer); held here so they are not garbage-collected mid-way.
_background: set[asyncio.Task[None]] = set()


def delete_doomed(engine: Engine, store: ArtifactStore, doomed: list[Doomed]) -> int:
    """Delete each object, then forget the rows whose objects are gone; how many went."""
    gone: list[Doomed] = []
    for item in doomed:
        try:
            if item.storage_key is not None:
                store.delete(item.storage_key)
        except StoreError as exc:
            log.warning("artifact %s: delete failed, retried later: %s", item.storage_key, exc)
            continue
        gone.append(item)
    rows.forget(engine, gone)
    return len(gone)


def collect(engine: Engine, store: ArtifactStore, *, experiment_id: int | None = None) -> int:
    """Mark what the keep policy and finished tasks drop, and delete it."""
    return delete_doomed(engine, store, rows.mark_dropped(engine, experiment_id=experiment_id))


def sweep(engine: Engine, store: ArtifactStore) -> int:
    """The reaper's pass: checkpoints of every finished task (pruned, cancelled, requeued into
    failure: outcomes no request reports), then the deletes that failed before."""
    deleted = collect(engine, store)
    return deleted + delete_doomed(engine, store, rows.doomed_rows(engine))


# Objects no row names are deleted once older than this: an upload's bytes are committed before
# its row (milliseconds), so only a crash, or a replaced object whose delete failed, leaves one.
UNNAMED_AGE_SECONDS = 3600.0
# How often the reaper lists the whole store for them (a listing of S3 costs requests).
UNNAMED_SWEEP_SECONDS = 3600.0
_BATCH = 500
_last_unnamed_sweep: dict[str, float] = {}


def sweep_unnamed(
    engine: Engine, store: ArtifactStore, *, older_than: float = UNNAMED_AGE_SECONDS
) -> int:
    """Delete the store's objects older than `older_than` seconds that no row names; how many."""
    deleted = 0
    batch: list[str] = []
    for key in store.keys(older_than=older_than):
        batch.append(key)
        if len(batch) == _BATCH:
            deleted += _delete_unnamed(engine, store, batch)
            batch = []
    return deleted + _delete_unnamed(engine, store, batch)


def _delete_unnamed(engine: Engine, store: ArtifactStore, keys: list[str]) -> int:
    named = rows.named_keys(engine, keys)
    orphans = [key for key in keys if key not in named]
    for key in orphans:
        store.delete(key)  # a StoreError ends the sweep: the next one tries again
        log.info("artifact store: deleted %s, which no artifact names", key)
    return len(orphans)


def sweep_unnamed_if_due(engine: Engine, store: ArtifactStore, now: float) -> int:
    """`sweep_unnamed` at most once per UNNAMED_SWEEP_SECONDS per store (the first pass after
    a start waits a whole period too: a restart loop never lists the store each time)."""
    last = _last_unnamed_sweep.setdefault(store.location, now)
    if now - last < UNNAMED_SWEEP_SECONDS:
        return 0
    _last_unnamed_sweep[store.location] = now
    return sweep_unnamed(engine, store)


def in_background(engine: Engine, store: ArtifactStore, doomed: list[Doomed]) -> None:
    """`delete_doomed` off the request: the rows are committed as `deleting` already, so if
    this never runs (the server stops), the reaper's `sweep` does it."""
    if doomed:
        _spawn(functools.partial(delete_doomed, engine, store, doomed))


def collect_in_background(engine: Engine, store: ArtifactStore, experiment_id: int) -> None:
    """`collect` for one experiment, off the request (after a task finished)."""
    _spawn(functools.partial(collect, engine, store, experiment_id=experiment_id))


def in_flight() -> int:
    """How many background clean-ups have not finished (tests wait for none)."""
    return len(_background)


async def wait_for_background() -> None:
    """Let this loop's clean-ups finish (the lifespan's end, before the engine is disposed)."""
    loop = asyncio.get_running_loop()
    mine = [task for task in _background if task.get_loop() is loop]
    if mine:
        await asyncio.gather(*mine, return_exceptions=True)


def _spawn(work: Callable[[], object]) -> None:
    task = asyncio.ensure_future(asyncio.to_thread(_quietly, work))
    _background.add(task)
    task.add_done_callback(_background.discard)


def _quietly(work: Callable[[], object]) -> None:
    try:
        work()
    except (SQLAlchemyError, StoreError) as exc:
        log.warning("artifact clean-up failed, the reaper retries: %s", exc)
