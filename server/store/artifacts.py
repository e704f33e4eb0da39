"""Artifact rows: admitting an upload under a lease, recording it (stored or missing), the
claim's latest checkpoint, and marking for deletion what the keep policy or a task's end drops.

Bytes are written to the store before a row names them (`record_stored`), and deleted only
after the row that dropped them committed as `deleting` (`mark_dropped`, then `forget`): a crash
between the two leaves an unnamed object or a row the reaper retries, never a row naming bytes
that are gone. Units here lock a task row only (the lock order's first kind) or no task row.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from morphml.wire import ArtifactPublic
from server.artifacts.stream import TooLargeError
from server.db import db_now, read, unit
from server.errors import ConflictError, NotFoundError, StaleLeaseError
from server.models import (
    ARTIFACT,
    EXPERIMENT,
    FINISHED_STATES,
    TASK,
    ArtifactState,
    ExperimentStatus,
    TaskState,
)
from server.store import sql as S
from server.store import warm_start
from server.store.artifact_columns import PUBLIC_COLUMNS, public
from server.store.sql import Row
from server.store.tasks import _check_caller, check_token

_artifact = ARTIFACT.id.table
_PUBLIC = PUBLIC_COLUMNS


@dataclass(frozen=True)
class Admission:
    """An upload the lease allows, and how many bytes it may bring."""

    task_id: int
    experiment_id: int
    max_bytes: int
    limit: str  # the 413's message once `max_bytes` is passed


@dataclass(frozen=True)
class Doomed:
    """An artifact row marked `deleting`, and the object to delete."""

    id: int
    storage_key: str | None


def storage_key(experiment_id: int, task_id: int, name: str) -> str:
    """A fresh key per upload: a replacement never overwrites the bytes a row still names."""
    return f"experiments/{experiment_id}/tasks/{task_id}/{secrets.token_hex(8)}-{name}"


_LEASE = sa.select(TASK.id, TASK.experiment_id, TASK.state, TASK.lease_token, TASK.worker_id).where(
    TASK.id == sa.bindparam("task_id")
)


def _check_lease(
    task: Row | None, task_id: int, lease_token: str, caller: int | None, kind: str
) -> None:
    """404 unknown task, 409 stale token, 403 another worker's lease; a running task's current
    lease, or (not for checkpoints) the lease that completed it, so that weights whose upload
    is retried after the result was acknowledged still arrive."""
    if task is None:
        raise NotFoundError(f"task {task_id} not found")
    check_token(task_id, task.lease_token, lease_token)
    _check_caller(caller, task.worker_id, "upload artifacts for")
    late_ok = task.state == TaskState.COMPLETED and kind != "checkpoint"
    if task.state != TaskState.RUNNING and not late_ok:
        raise ConflictError(f"task {task_id} is {task.state}: its {kind} is not needed any more")


def admit_upload(
    engine: Engine,
    *,
    task_id: int,
    name: str,
    kind: str,
    lease_token: str,
    caller: int | None,
    declared_bytes: int | None,
    max_bytes: int,
    experiment_max_bytes: int,
) -> Admission:
    """Before a byte is read: the lease, and room under both size limits (413 when the declared
    length already does not fit)."""
    with read(engine) as connection:
        task = connection.execute(_LEASE, {"task_id": task_id}).first()
        _check_lease(task, task_id, lease_token, caller, kind)
        assert task is not None
        used = _experiment_bytes(connection, task.experiment_id, task_id, name)
    room = experiment_max_bytes - used
    if room < max_bytes:
        limit = (
            f"experiment {task.experiment_id}'s artifacts would pass "
            f"{experiment_max_bytes} bytes (MORPHML_EXPERIMENT_ARTIFACTS_MAX_BYTES)"
        )
    else:
        limit = f"artifact larger than {max_bytes} bytes (MORPHML_ARTIFACT_MAX_BYTES)"
    admission = Admission(task_id, task.experiment_id, max(0, min(max_bytes, room)), limit)
    if declared_bytes is not None and declared_bytes > admission.max_bytes:
        raise TooLargeError(admission.limit)
    return admission


def _experiment_bytes(connection: Connection, experiment_id: int, task_id: int, name: str) -> int:
    """Bytes the experiment's stored artifacts hold, but the one this upload would replace."""
    replaced = sa.and_(ARTIFACT.task_id == task_id, ARTIFACT.name == name)
    total = sa.select(sa.func.coalesce(sa.func.sum(ARTIFACT.size), 0)).where(
        ARTIFACT.experiment_id == experiment_id,
        ARTIFACT.status == ArtifactState.STORED,
        sa.not_(replaced),
    )
    return int(connection.execute(total).scalar_one())


def record_stored(
    engine: Engine,
    *,
    admission: Admission,
    name: str,
    kind: str,
    epoch: int | None,
    key: str,
    size: int,
    sha256: str,
    lease_token: str,
    caller: int | None,
) -> tuple[ArtifactPublic, list[Doomed]]:
    """Name the bytes just committed under `key`, if the lease still holds (409 otherwise: the
    caller deletes them). Returns the artifact and what it displaced: the object it replaced,
    and, for a checkpoint, the task's older checkpoints (only the latest is ever resumed)."""
    task_id = admission.task_id
    values: dict[str, Any] = {
        "kind": kind,
        "storage_key": key,
        "size": size,
        "sha256": sha256,
        "status": ArtifactState.STORED,
        "reason": None,
        "epoch": epoch,
    }
    with unit(engine) as connection:
        task = connection.execute(S.LOCK_TASK, {"task_id": task_id}).first()
        _check_lease(task, task_id, lease_token, caller, kind)
        doomed = _replace(connection, admission, name, values)
        if kind == "checkpoint":
            doomed += _mark(connection, _older_checkpoints(task_id, name))
        row = connection.execute(_by_name(task_id, name)).one()
    return public(row), doomed


def _replace(
    connection: Connection, admission: Admission, name: str, values: dict[str, Any]
) -> list[Doomed]:
    """Insert the row, or point the existing one at the new bytes; the old object is doomed
    (it has no row of its own: deleted after the commit, or found by a sweep of the store)."""
    where = (ARTIFACT.task_id == admission.task_id, ARTIFACT.name == name)
    old = connection.execute(sa.select(ARTIFACT.id, ARTIFACT.storage_key).where(*where)).first()
    if old is None:
        row = {"experiment_id": admission.experiment_id, "task_id": admission.task_id, **values}
        connection.execute(sa.insert(_artifact).values(created_at=db_now(), name=name, **row))
        return []
    connection.execute(sa.update(_artifact).where(*where).values(created_at=db_now(), **values))
    return [Doomed(id=0, storage_key=old.storage_key)] if old.storage_key else []


def record_missing(
    engine: Engine,
    *,
    admission: Admission,
    name: str,
    kind: str,
    epoch: int | None,
    sha256: str,
    reason: str,
) -> None:
    """The store failed this upload: say so, unless a stored artifact of that name is kept
    (an earlier upload's bytes are still good)."""
    with unit(engine) as connection:
        connection.execute(S.LOCK_TASK, {"task_id": admission.task_id}).first()
        if connection.execute(_by_name(admission.task_id, name)).first() is not None:
            return
        connection.execute(
            sa.insert(_artifact).values(
                created_at=db_now(),
                experiment_id=admission.experiment_id,
                task_id=admission.task_id,
                name=name,
                kind=kind,
                storage_key=None,
                size=0,
                sha256=sha256,
                status=ArtifactState.MISSING,
                reason=reason[:2000],
                epoch=epoch,
            )
        )


def _by_name(task_id: int, name: str) -> sa.Select[Any]:
    return sa.select(*_PUBLIC).where(ARTIFACT.task_id == task_id, ARTIFACT.name == name)


def _older_checkpoints(task_id: int, name: str) -> sa.ColumnElement[bool]:
    return sa.and_(
        ARTIFACT.task_id == task_id,
        ARTIFACT.kind == "checkpoint",
        ARTIFACT.name != name,
        ARTIFACT.status != ArtifactState.DELETING,
    )


def _mark(connection: Connection, where: sa.ColumnElement[bool]) -> list[Doomed]:
    marked = connection.execute(
        sa.update(_artifact)
        .where(where)
        .values(status=ArtifactState.DELETING)
        .returning(ARTIFACT.id, ARTIFACT.storage_key)
    )
    return [Doomed(id=row.id, storage_key=row.storage_key) for row in marked]


# --- reads -----------------------------------------------------------------------------------


def for_download(
    engine: Engine, *, task_id: int, name: str, lease_token: str | None, caller: int | None
) -> Row:
    """A stored artifact's row; `lease_token` (a worker): only under the task's current lease,
    or the lease of a running promotion whose warm start is exactly this artifact."""
    with read(engine) as connection:
        if lease_token is not None:
            _check_download_lease(connection, task_id, name, lease_token, caller)
        row = connection.execute(_by_name(task_id, name)).first()
    if row is None or row.status == ArtifactState.DELETING:
        raise NotFoundError(f"task {task_id} has no artifact {name!r}")
    if row.status != ArtifactState.STORED:
        raise NotFoundError(f"task {task_id}'s artifact {name!r} is missing: {row.reason}")
    return row


def _check_download_lease(
    connection: Connection, task_id: int, name: str, lease_token: str, caller: int | None
) -> None:
    task = connection.execute(_LEASE, {"task_id": task_id}).first()
    if task is None:
        raise NotFoundError(f"task {task_id} not found")
    try:
        check_token(task_id, task.lease_token, lease_token)
    except StaleLeaseError:
        if warm_start.check_warm_start_read(
            connection, owner=task, name=name, lease_token=lease_token, caller=caller
        ):
            return
        raise
    _check_caller(caller, task.worker_id, "download artifacts of")


def listing(
    engine: Engine, *, task_id: int | None = None, experiment_id: int | None = None
) -> list[ArtifactPublic]:
    """A task's or an experiment's artifacts (not those being deleted), oldest first; 404 when
    the task or experiment does not exist."""
    where = [ARTIFACT.status != ArtifactState.DELETING]
    if task_id is not None:
        where.append(ARTIFACT.task_id == task_id)
    if experiment_id is not None:
        where.append(ARTIFACT.experiment_id == experiment_id)
    with read(engine) as connection:
        _must_exist(connection, task_id, experiment_id)
        rows = connection.execute(sa.select(*_PUBLIC).where(*where).order_by(ARTIFACT.id))
        return [public(row) for row in rows]


def _must_exist(connection: Connection, task_id: int | None, experiment_id: int | None) -> None:
    if task_id is not None:
        if connection.execute(_LEASE, {"task_id": task_id}).first() is None:
            raise NotFoundError(f"task {task_id} not found")
    if experiment_id is not None:
        found = connection.execute(S.EXPERIMENT_SPEC, {"experiment_id": experiment_id}).first()
        if found is None:
            raise NotFoundError(f"experiment {experiment_id} not found")


def latest_checkpoints(engine: Engine, task_ids: list[int]) -> dict[int, ArtifactPublic]:
    """Each task's stored checkpoint of the highest epoch (one indexed query: the claim asks
    only for retried tasks)."""
    if not task_ids:
        return {}
    query = (
        sa.select(*_PUBLIC)
        .where(
            ARTIFACT.task_id.in_(task_ids),
            ARTIFACT.kind == "checkpoint",
            ARTIFACT.status == ArtifactState.STORED,
        )
        .order_by(ARTIFACT.task_id, ARTIFACT.epoch.desc(), ARTIFACT.id.desc())
    )
    latest: dict[int, ArtifactPublic] = {}
    with read(engine) as connection:
        for row in connection.execute(query):
            latest.setdefault(row.task_id, public(row))
    return latest


# --- deletion --------------------------------------------------------------------------------


def delete_one(engine: Engine, *, task_id: int, name: str) -> list[Doomed]:
    """An admin's delete: the row marked, its bytes deleted after the commit."""
    with unit(engine) as connection:
        doomed = _mark(connection, sa.and_(ARTIFACT.task_id == task_id, ARTIFACT.name == name))
    if not doomed:
        raise NotFoundError(f"task {task_id} has no artifact {name!r}")
    return doomed


def mark_dropped(engine: Engine, *, experiment_id: int | None = None) -> list[Doomed]:
    """Mark for deletion the checkpoints of finished tasks and, per experiment, the weights its
    keep policy drops (all experiments when `experiment_id` is None: checkpoints only)."""
    finished = sa.select(TASK.id).where(TASK.state.in_(FINISHED_STATES))
    if experiment_id is not None:
        finished = finished.where(TASK.experiment_id == experiment_id)
    checkpoints = sa.and_(
        ARTIFACT.kind == "checkpoint",
        ARTIFACT.status != ArtifactState.DELETING,
        ARTIFACT.task_id.in_(finished),
    )
    if experiment_id is not None:
        checkpoints = sa.and_(checkpoints, ARTIFACT.experiment_id == experiment_id)
    if not _has_artifacts(engine, experiment_id):
        return []  # most experiments: a read, never the write lock
    with unit(engine) as connection:
        doomed = _mark(connection, checkpoints)
        if experiment_id is not None:
            doomed += _drop_weights(connection, experiment_id, finished)
    return doomed


def _has_artifacts(engine: Engine, experiment_id: int | None) -> bool:
    query = sa.select(ARTIFACT.id).where(ARTIFACT.status != ArtifactState.DELETING).limit(1)
    if experiment_id is not None:
        query = query.where(ARTIFACT.experiment_id == experiment_id)
    with read(engine) as connection:
        return connection.execute(query).first() is not None


def _drop_weights(
    connection: Connection, experiment_id: int, finished: sa.Select[Any]
) -> list[Doomed]:
    """Weights of finished tasks outside the kept set: completed tasks, the best `k` of them by
    the first objective (`best`: 1; `all`: every one; `none`: no task). Weights a pending or
    running promotion starts from are spared until it finishes (warm_start.py)."""
    spec = connection.execute(S.EXPERIMENT_SPEC, {"experiment_id": experiment_id}).scalar()
    policy = (spec or {}).get("artifacts") or {"keep": "top_k", "k": 5}
    kept = sa.select(TASK.id).where(
        TASK.experiment_id == experiment_id, TASK.state == TaskState.COMPLETED
    )
    keep = policy.get("keep", "top_k")
    if keep in ("top_k", "best"):
        limit = 1 if keep == "best" else int(policy.get("k", 5))
        ranked = kept.where(TASK.score.is_not(None)).order_by(TASK.score.desc(), TASK.id)
        kept = ranked.limit(limit)
    dropped = sa.and_(
        ARTIFACT.experiment_id == experiment_id,
        ARTIFACT.kind == "weights",
        ARTIFACT.status != ArtifactState.DELETING,
        ARTIFACT.task_id.in_(finished),
        ARTIFACT.task_id.not_in(warm_start.needed_by_promotions(experiment_id).scalar_subquery()),
        ARTIFACT.task_id.not_in(_untold(experiment_id).scalar_subquery()),
    )
    if keep != "none":
        dropped = sa.and_(dropped, ARTIFACT.task_id.not_in(kept.scalar_subquery()))
    return _mark(connection, dropped)


def _untold(experiment_id: int) -> sa.Select[Any]:
    """Tasks of a live experiment whose outcome its optimizer has not been told yet: the refill
    that tells it may promote the task (ASHA, Hyperband), so its weights wait for that refill.
    A clean-up spawned by an earlier completion can otherwise run between a completion and the
    refill that creates its promotion, and drop the weights the promotion would start from."""
    live = sa.select(EXPERIMENT.id).where(
        EXPERIMENT.id == experiment_id,
        EXPERIMENT.status.in_((ExperimentStatus.RUNNING, ExperimentStatus.PAUSED)),
    )
    return sa.select(TASK.id).where(
        TASK.experiment_id.in_(live.scalar_subquery()), TASK.tell_pending.is_(True)
    )


def doomed_rows(engine: Engine, *, limit: int = 100) -> list[Doomed]:
    """Rows still `deleting` (a delete that failed or was never tried): the reaper retries."""
    with read(engine) as connection:
        rows = connection.execute(
            sa.select(ARTIFACT.id, ARTIFACT.storage_key)
            .where(ARTIFACT.status == ArtifactState.DELETING)
            .order_by(ARTIFACT.id)
            .limit(limit)
        )
        return [Doomed(id=row.id, storage_key=row.storage_key) for row in rows]


def named_keys(engine: Engine, keys: list[str]) -> set[str]:
    """Those of `keys` that a row names (in any status: a `deleting` row's bytes are the
    reaper's retry, not an orphan)."""
    if not keys:
        return set()
    query = sa.select(ARTIFACT.storage_key).where(ARTIFACT.storage_key.in_(keys))
    with read(engine) as connection:
        return set(connection.execute(query).scalars())


def forget(engine: Engine, doomed: list[Doomed]) -> None:
    """Drop the rows whose bytes are gone (only if still `deleting` the same bytes: a
    replacement uploaded meanwhile keeps its row)."""
    rows = [d for d in doomed if d.id]
    if not rows:
        return
    with unit(engine) as connection:
        for row in rows:
            connection.execute(
                sa.delete(_artifact).where(
                    ARTIFACT.id == row.id,
                    ARTIFACT.status == ArtifactState.DELETING,
                    sa.or_(ARTIFACT.storage_key == row.storage_key, ARTIFACT.storage_key.is_(None)),
                )
            )
