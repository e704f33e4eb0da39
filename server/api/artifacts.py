"""Artifacts: a worker uploads its task's files under the lease (streamed, checksummed,
size-limited); admins list, download and delete them; a worker downloads its task's own
(the checkpoint it resumes from) under the current lease.

The bytes go through the server, never around it: workers hold no storage credentials and
need no route to the store, and the same endpoints serve the directory and S3 backends.
"""

from __future__ import annotations

import asyncio
import re
from typing import Annotated

from fastapi import APIRouter, Header, HTTPException, Path, Request, Response, status
from fastapi.responses import StreamingResponse
from starlette.requests import ClientDisconnect

from morphml.wire import (
    ARTIFACT_KIND_HEADER,
    ARTIFACT_NAME_PATTERN,
    EPOCH_HEADER,
    LEASE_TOKEN_HEADER,
    SHA256_HEADER,
    ArtifactKind,
    LeaseToken,
)
from server.api.responses import error, errors, extra
from server.artifacts import (
    ArtifactNotFoundError,
    ArtifactStore,
    StoreError,
    StoreFullError,
    cleanup,
)
from server.artifacts.stream import ChecksumMismatchError, TooLargeError, receive, verified
from server.auth import Role
from server.db import Database
from server.deps import (
    AdminAuth,
    ArtifactStoreDep,
    CallerWorker,
    DatabaseDep,
    RoleDep,
    SettingsDep,
    WorkerAuth,
)
from server.errors import ForbiddenError, NotFoundError
from server.schemas import ArtifactPublic, ArtifactsPublic
from server.store import artifacts as rows
from server.store.artifacts import Admission

router = APIRouter(prefix="/v1", tags=["artifacts"], dependencies=[WorkerAuth])

# The upload route streams its body under its own limits (server.limits.BodySizeLimit).
UPLOAD_PATH = ("PUT", re.compile(r"/v1/tasks/[^/]+/artifacts/.*"))

TaskId = Annotated[int, Path(ge=1, le=2**31 - 1, description="The task's id.")]
ExperimentId = Annotated[int, Path(ge=1, le=2**31 - 1, description="The experiment's id.")]
ArtifactName = Annotated[
    str,
    Path(
        pattern=ARTIFACT_NAME_PATTERN,
        description="Letters, digits, `.`, `_`, `-`; starts with a letter or digit; at most "
        "128 characters (no paths).",
    ),
]
NO_TASK = ("No task has this id.", "task 12 not found")
NO_ARTIFACT = (
    "No task has this id, or it has no stored artifact of this name (a `missing` one says why).",
    "task 12 has no artifact 'weights.pt'",
)
BAD_NAME = (
    "The name is not a plain file name (`../x`, `/etc/passwd`, a NUL byte), or an id is out "
    "of range."
)
STALE = (
    "The lease token is not the task's current one (reassigned or finished; a completed "
    "task's own token may still upload weights and files): nothing was kept.",
    "task 12: lease token is not current (the task was reassigned or finished)",
)
WRONG_WORKER = (
    "The worker credential names another worker than the lease holder.",
    "worker 4 may not upload artifacts for worker 3",
)
STORE_DOWN = (
    "The artifact store does not answer (or refuses access): the artifact is recorded as "
    "`missing` with the reason; the task's result is unaffected. Retry later.",
    "artifact store: upload failed: EndpointConnectionError",
)
STORE_FULL = (
    "The artifact store is full (disk or quota): the artifact is recorded as `missing`.",
    "artifact store: write failed: No space left on device",
)
UPLOAD_BODY = {
    "required": True,
    "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
}


@router.put(
    "/tasks/{task_id}/artifacts/{name:path}",
    status_code=status.HTTP_201_CREATED,
    response_model=ArtifactPublic,
    summary="Upload a task artifact (streamed)",
    description="Stream the raw bytes of a file the task produced: its final `weights`, a "
    "`checkpoint` (with its epoch; only the latest is kept, and all go when the task "
    "finishes) or a `file` (e.g. one a `python` evaluator saved). Headers: the lease token "
    f"(`{LEASE_TOKEN_HEADER}`, the task's current lease; a completed task's own token may "
    f"still send weights and files), `{ARTIFACT_KIND_HEADER}`, `{SHA256_HEADER}` (hex "
    f"sha256 of the body) and, for checkpoints, `{EPOCH_HEADER}`.\n\nThe server hashes and "
    "counts the body as it streams it to the artifact store and makes it visible only when "
    "it is whole and its sha256 matches: a half-sent, oversized or corrupted upload leaves "
    "nothing. The same name again replaces the artifact. A 201 means the bytes are durably "
    "stored. Weights are then subject to the experiment's keep policy (`artifacts`).\n\n"
    "Worker or admin token (and the worker's credential).",
    response_description="The stored artifact.",
    responses=errors(
        worker=True,
        status_403=WRONG_WORKER,
        status_404=NO_TASK,
        status_409=STALE,
        status_413=(
            "The body is larger than `MORPHML_ARTIFACT_MAX_BYTES`, or the experiment's stored "
            "artifacts would pass `MORPHML_EXPERIMENT_ARTIFACTS_MAX_BYTES` (refused from the "
            "declared Content-Length before reading, or as soon as the stream passes it).",
            "artifact larger than 1048576 bytes (MORPHML_ARTIFACT_MAX_BYTES)",
        ),
    )
    | {503: error(*STORE_DOWN), 507: error(*STORE_FULL)},
    openapi_extra={
        **extra(
            invalid=BAD_NAME + " Or the body's sha256 is not the one sent (nothing was kept), "
            "or a header is missing or malformed."
        ),
        "requestBody": UPLOAD_BODY,
    },
)
async def upload(
    task_id: TaskId,
    name: ArtifactName,
    request: Request,
    database: DatabaseDep,
    settings: SettingsDep,
    store: ArtifactStoreDep,
    caller: CallerWorker,
    lease_token: Annotated[LeaseToken, Header(alias=LEASE_TOKEN_HEADER)],
    sha256: Annotated[str, Header(alias=SHA256_HEADER, pattern=r"^[0-9a-f]{64}$")],
    kind: Annotated[ArtifactKind, Header(alias=ARTIFACT_KIND_HEADER)] = "file",
    epoch: Annotated[int | None, Header(alias=EPOCH_HEADER, ge=0, le=2**31 - 1)] = None,
) -> ArtifactPublic:
    declared = _declared_length(request)
    admission = await _admit(database, settings, task_id, name, kind, lease_token, caller, declared)
    key = rows.storage_key(admission.experiment_id, task_id, name)
    try:
        received = await receive(
            store,
            key,
            request.stream(),
            max_bytes=admission.max_bytes,
            limit=admission.limit,
            sha256=sha256,
        )
    except TooLargeError as exc:
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, str(exc)) from None
    except ChecksumMismatchError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None
    except StoreError as exc:
        await database.run(
            rows.record_missing,
            admission=admission,
            name=name,
            kind=kind,
            epoch=epoch,
            sha256=sha256,
            reason=str(exc),
        )
        code = 507 if isinstance(exc, StoreFullError) else status.HTTP_503_SERVICE_UNAVAILABLE
        raise HTTPException(code, str(exc)) from None
    except ClientDisconnect:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "the upload was cut off") from None
    try:
        artifact, doomed = await database.run(
            rows.record_stored,
            admission=admission,
            name=name,
            kind=kind,
            epoch=epoch,
            key=key,
            size=received.size,
            sha256=received.sha256,
            lease_token=lease_token,
            caller=caller,
        )
    except BaseException:
        # The lease went stale during the upload (or the database failed): no row names the
        # bytes, so they go.
        await asyncio.shield(asyncio.to_thread(_delete_quietly, store, key))
        raise
    cleanup.in_background(database.engine, store, doomed)
    if kind == "weights":  # a completed task's late weights meet the keep policy now
        cleanup.collect_in_background(database.engine, store, admission.experiment_id)
    return artifact


def _declared_length(request: Request) -> int | None:
    value = request.headers.get("content-length")
    if value is None:
        return None
    if not value.isdigit():
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "malformed Content-Length")
    return int(value)


async def _admit(
    database: Database,
    settings: SettingsDep,
    task_id: int,
    name: str,
    kind: str,
    lease_token: str,
    caller: int | None,
    declared: int | None,
) -> Admission:
    try:
        return await database.run(
            rows.admit_upload,
            task_id=task_id,
            name=name,
            kind=kind,
            lease_token=lease_token,
            caller=caller,
            declared_bytes=declared,
            max_bytes=settings.artifact_max_bytes,
            experiment_max_bytes=settings.experiment_artifacts_max_bytes,
        )
    except TooLargeError as exc:
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, str(exc)) from None


def _delete_quietly(store: ArtifactStore, key: str) -> None:
    try:
        store.delete(key)
    except StoreError:
        pass  # unnamed by any row: invisible; a sweep of the store finds it


@router.get(
    "/tasks/{task_id}/artifacts/{name:path}",
    response_class=StreamingResponse,
    summary="Download a task artifact (streamed)",
    description="The artifact's bytes, streamed, with its sha256 in the "
    f"`{SHA256_HEADER}` header (verify it). The server checks the stored bytes against the "
    "sha256 recorded at upload as it sends them: corrupted bytes end the transfer early, so a "
    "client never takes them for whole.\n\nAdmin token; or a worker token with the task's "
    f"current lease token in `{LEASE_TOKEN_HEADER}` (how a resumed attempt fetches its "
    "checkpoint), or with the lease token of a running promotion (ASHA, Hyperband) whose "
    "`warm_start` is exactly this artifact.",
    response_description="The bytes (application/octet-stream).",
    responses={
        200: {"content": {"application/octet-stream": {"schema": {"type": "string"}}}},
        **errors(
            worker=True,
            status_403=(
                "A worker token without the task's lease token, or another worker's lease.",
                "a worker downloads only its task's artifacts, under the lease",
            ),
            status_404=NO_ARTIFACT,
            status_409=STALE,
        ),
        503: error(*STORE_DOWN),
    },
    openapi_extra=extra(invalid=BAD_NAME),
)
async def download(
    task_id: TaskId,
    name: ArtifactName,
    database: DatabaseDep,
    store: ArtifactStoreDep,
    role: RoleDep,
    caller: CallerWorker,
    lease_token: Annotated[LeaseToken | None, Header(alias=LEASE_TOKEN_HEADER)] = None,
) -> StreamingResponse:
    if role == Role.WORKER and lease_token is None:
        raise ForbiddenError("a worker downloads only its task's artifacts, under the lease")
    token = lease_token if role == Role.WORKER else None
    row = await database.run(
        rows.for_download, task_id=task_id, name=name, lease_token=token, caller=caller
    )
    try:
        chunks = await asyncio.to_thread(store.read, row.storage_key)
    except ArtifactNotFoundError:
        raise NotFoundError(f"task {task_id}'s artifact {name!r}: bytes not in the store") from None
    except StoreError as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(exc)) from None
    headers = {
        "content-length": str(row.size),
        SHA256_HEADER: row.sha256,
        "etag": f'"{row.sha256}"',
        "content-disposition": f'attachment; filename="{name}"',
    }
    body = verified(chunks, row.sha256, f"{task_id}/{name}")
    return StreamingResponse(body, media_type="application/octet-stream", headers=headers)


@router.get(
    "/tasks/{task_id}/artifacts",
    response_model=ArtifactsPublic,
    dependencies=[AdminAuth],
    summary="List a task's artifacts",
    description="Every artifact of the task, stored or `missing` (with the reason), oldest "
    "first.\n\nAdmin token.",
    response_description="The task's artifacts.",
    responses=errors(admin=True, status_404=NO_TASK),
    openapi_extra=extra(invalid="The task id is not an integer in [1, 2^31 - 1]."),
)
async def list_task_artifacts(task_id: TaskId, database: DatabaseDep) -> ArtifactsPublic:
    found = await database.run(rows.listing, task_id=task_id)
    return ArtifactsPublic(data=found, count=len(found))


@router.get(
    "/experiments/{experiment_id}/artifacts",
    response_model=ArtifactsPublic,
    dependencies=[AdminAuth],
    summary="List an experiment's artifacts",
    description="Every artifact of the experiment's tasks (the kept weights, checkpoints of "
    "running tasks, files), oldest first.\n\nAdmin token.",
    response_description="The experiment's artifacts.",
    responses=errors(
        admin=True, status_404=("No experiment has this id.", "experiment 7 not found")
    ),
    openapi_extra=extra(invalid="The experiment id is not an integer in [1, 2^31 - 1]."),
)
async def list_experiment_artifacts(
    experiment_id: ExperimentId, database: DatabaseDep
) -> ArtifactsPublic:
    found = await database.run(rows.listing, experiment_id=experiment_id)
    return ArtifactsPublic(data=found, count=len(found))


@router.delete(
    "/tasks/{task_id}/artifacts/{name:path}",
    status_code=status.HTTP_204_NO_CONTENT,
    dependencies=[AdminAuth],
    summary="Delete a task artifact",
    description="Forget the artifact and delete its bytes (at once, or by the reaper when "
    "the store fails now).\n\nAdmin token.",
    response_description="Deleted.",
    responses=errors(admin=True, status_404=NO_ARTIFACT),
    openapi_extra=extra(invalid=BAD_NAME),
)
async def delete(
    task_id: TaskId, name: ArtifactName, database: DatabaseDep, store: ArtifactStoreDep
) -> Response:
    doomed = await database.run(rows.delete_one, task_id=task_id, name=name)
    await asyncio.to_thread(cleanup.delete_doomed, database.engine, store, doomed)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
