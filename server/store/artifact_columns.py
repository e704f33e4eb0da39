"""The artifact columns a listing, a claim or a warm start reads, and their wire form."""

from __future__ import annotations

from morphml.wire import ArtifactPublic
from server.models import ARTIFACT
from server.store.sql import Row

PUBLIC_COLUMNS = (
    ARTIFACT.id,
    ARTIFACT.task_id,
    ARTIFACT.experiment_id,
    ARTIFACT.name,
    ARTIFACT.kind,
    ARTIFACT.size,
    ARTIFACT.sha256,
    ARTIFACT.status,
    ARTIFACT.reason,
    ARTIFACT.epoch,
    ARTIFACT.storage_key,
    ARTIFACT.created_at,
)


def public(row: Row) -> ArtifactPublic:
    return ArtifactPublic(
        task_id=row.task_id,
        name=row.name,
        kind=row.kind,
        size=row.size,
        sha256=row.sha256,
        status=row.status,
        reason=row.reason,
        epoch=row.epoch,
        created_at=row.created_at,
    )
