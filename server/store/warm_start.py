"""Warm starts of multi-fidelity promotions: which stored weights a promoted task starts from,
and the one artifact of another task that its lease may read.

A promotion (ASHA, Hyperband: the candidate's meta names `promoted_from`) is the same
architecture at a higher budget, so the weights of the same architecture's completed task at
the highest lower budget are where it picks up. Architectures are matched by the candidate key's
hash part (`"<64 hex>@<budget>"`, morphml.optimizers.base.candidate_key).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from morphml.wire import ArtifactPublic
from server.db import read
from server.models import ARTIFACT, TASK, ArtifactState, TaskState
from server.store.artifact_columns import PUBLIC_COLUMNS, public
from server.store.sql import IN_FLIGHT, Row
from server.store.tasks import _check_caller

HASH_PREFIX = 65  # the architecture hash (sha256, hex) and the "@" of a candidate key

_PROMOTED = sa.select(TASK.id, TASK.experiment_id, TASK.candidate_key, TASK.budget).where(
    TASK.id.in_(sa.bindparam("task_ids", expanding=True))
)


def is_promotion(candidate: dict[str, Any]) -> bool:
    meta = candidate.get("meta")
    return isinstance(meta, dict) and meta.get("promoted_from") is not None


def warm_starts(engine: Engine, task_ids: list[int]) -> dict[int, ArtifactPublic]:
    """The weights each promoted task starts from, where some are stored (one read; the claim
    asks only for promotions)."""
    if not task_ids:
        return {}
    found: dict[int, ArtifactPublic] = {}
    with read(engine) as connection:
        for task in connection.execute(_PROMOTED, {"task_ids": task_ids}):
            artifact = lower_weights(connection, task)
            if artifact is not None:
                found[task.id] = artifact
    return found


def lower_weights(connection: Connection, task: Row) -> ArtifactPublic | None:
    """Stored weights of the same experiment and architecture at the highest lower budget
    whose task completed; None for a task without a budget or without such weights."""
    if task.budget is None:
        return None
    query = (
        sa.select(*PUBLIC_COLUMNS)
        .join(TASK.id.table, TASK.id == ARTIFACT.task_id)
        .where(
            ARTIFACT.experiment_id == task.experiment_id,
            ARTIFACT.kind == "weights",
            ARTIFACT.status == ArtifactState.STORED,
            TASK.state == TaskState.COMPLETED,
            TASK.budget < task.budget,
            sa.func.substr(TASK.candidate_key, 1, HASH_PREFIX) == task.candidate_key[:HASH_PREFIX],
        )
        .order_by(TASK.budget.desc(), ARTIFACT.id.desc())
        .limit(1)
    )
    row = connection.execute(query).first()
    return public(row) if row is not None else None


def check_warm_start_read(
    connection: Connection,
    *,
    owner: Row,
    name: str,
    lease_token: str,
    caller: int | None,
) -> bool:
    """Whether `lease_token` is the live lease of a running promotion of `owner`'s experiment
    whose warm start is exactly `owner`'s artifact `name` (403 when another worker holds it)."""
    holder = connection.execute(
        sa.select(TASK.id, TASK.experiment_id, TASK.candidate_key, TASK.budget, TASK.worker_id)
        .where(
            TASK.state == TaskState.RUNNING,
            TASK.experiment_id == owner.experiment_id,
            TASK.lease_token == lease_token,
        )
        .limit(1)
    ).first()
    if holder is None:
        return False
    artifact = lower_weights(connection, holder)
    if artifact is None or (artifact.task_id, artifact.name) != (owner.id, name):
        return False
    _check_caller(caller, holder.worker_id, "download artifacts of")
    return True


def needed_by_promotions(experiment_id: int) -> sa.Select[Any]:
    """Task ids whose weights a pending or running task of the same architecture at a higher
    budget may start from: the keep policy spares them until that task finishes."""
    lower, higher = TASK.id.table.alias("lower_task"), TASK.id.table.alias("higher_task")
    waiting = sa.exists().where(
        higher.c.experiment_id == experiment_id,
        higher.c.state.in_(IN_FLIGHT),
        higher.c.budget > lower.c.budget,
        sa.func.substr(higher.c.candidate_key, 1, HASH_PREFIX)
        == sa.func.substr(lower.c.candidate_key, 1, HASH_PREFIX),
    )
    return sa.select(lower.c.id).where(lower.c.experiment_id == experiment_id, waiting)
