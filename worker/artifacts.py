"""Artifacts through the server: upload a task's file, download the file a task starts from.

Both stream (a file is never held in memory) and both check the sha256: an upload names it in a
header (the server checks it while it writes, and keeps nothing on a mismatch); a download is
hashed as it is written to a temporary file and renamed into place only when it matches. The
worker's usual headers (token, credential) authenticate; the task's lease token authorises.

Outcomes a caller acts on: `ArtifactRefused` (final: 4xx; `lease_lost` for 409/404, the lease is
no longer this worker's), `StoreUnavailable` (the server or its store cannot take it now: a 5xx,
507, a transport error past the deadline: try again later).
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import httpx

from morphml.evaluators.context import NAME_PATTERN
from morphml.wire import (
    ARTIFACT_KIND_HEADER,
    EPOCH_HEADER,
    LEASE_TOKEN_HEADER,
    SHA256_HEADER,
    WORKER_CREDENTIAL_HEADER,
    ArtifactKind,
    ArtifactPublic,
)
from worker.http import ServerApi

CHUNK_BYTES = 1 << 20
KINDS: tuple[ArtifactKind, ...] = ("weights", "checkpoint", "file")


class ArtifactRefused(Exception):
    """The server will not take (or give) this artifact, and retrying will not change that."""

    def __init__(self, text: str, status: int) -> None:
        super().__init__(text)
        self.status = status

    @property
    def lease_lost(self) -> bool:
        return self.status in (404, 409)


class StoreUnavailable(Exception):
    """Not now: the server or its store is unreachable, unavailable or full."""


class Cancelled(Exception):
    """The upload was called off (a newer checkpoint, the task ended)."""


@dataclass(frozen=True)
class Saved:
    """A file the evaluation asked the agent to upload (a message on its reply pipe)."""

    name: str
    path: Path
    kind: ArtifactKind
    epoch: int | None = None

    @classmethod
    def from_message(cls, message: dict[str, Any], task_dir: Path) -> Saved:
        """The child's `{"checkpoint": {...}}` or `{"artifact": {...}}`; ValueError when it is
        not one, names a bad name or a file outside the task dir (the agent sends nothing else:
        the evaluation must not have it upload the worker's own files)."""
        body = message.get("checkpoint") or message.get("artifact")
        if not isinstance(body, dict):
            raise ValueError("not an artifact message")
        kind = "checkpoint" if "checkpoint" in message else body.get("kind")
        name, path, epoch = body.get("name"), Path(str(body.get("path"))), body.get("epoch")
        if kind not in KINDS or not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
            raise ValueError(f"bad artifact {kind!r} {name!r}")
        if not path.resolve().is_relative_to(task_dir.resolve()):
            raise ValueError(f"artifact {name!r}: {path} is outside the task dir")
        if epoch is not None and (not isinstance(epoch, int) or isinstance(epoch, bool)):
            raise ValueError(f"artifact {name!r}: epoch {epoch!r}")
        return cls(name, path, kind, epoch)


def sha256_of(handle: IO[bytes]) -> tuple[str, int]:
    """The hex digest and size of what is left to read in `handle` (rewound after)."""
    start, digest, size = handle.tell(), hashlib.sha256(), 0
    while chunk := handle.read(CHUNK_BYTES):
        digest.update(chunk)
        size += len(chunk)
    handle.seek(start)
    return digest.hexdigest(), size


def upload(
    api: ServerApi,
    task_id: int,
    lease_token: str,
    saved: Saved,
    *,
    deadline: float,
    credential: str | None = None,
    cancel: threading.Event | None = None,
) -> ArtifactPublic:
    """PUT the file; transport errors are retried (with the api's backoff) until `deadline`,
    an unavailable or full store is not (that will not clear in seconds). The file is opened
    once: a newer version renamed over it meanwhile does not mix into this one."""
    with saved.path.open("rb") as handle:
        sha256, size = sha256_of(handle)
        headers = _headers(api, credential, lease_token)
        headers.update({ARTIFACT_KIND_HEADER: saved.kind, SHA256_HEADER: sha256,
                        "Content-Length": str(size)})  # fmt: skip
        if saved.epoch is not None:
            headers[EPOCH_HEADER] = str(saved.epoch)
        url = f"/v1/tasks/{int(task_id)}/artifacts/{saved.name}"
        attempt = 0
        while True:
            handle.seek(0)
            try:
                response = api.client.put(url, content=_chunks(handle, cancel), headers=headers)
            except httpx.HTTPError as exc:  # transport errors above all; a blip is retried
                if cancel is not None and cancel.is_set():
                    raise Cancelled(saved.name) from None
                delay = api.backoff.delay(attempt)
                if time.monotonic() + delay > deadline:
                    raise StoreUnavailable(f"PUT {url}: {type(exc).__name__}: {exc}") from None
                attempt += 1
                if api.pause(delay, cancel):
                    raise Cancelled(saved.name) from None
                continue
            return _stored(response, url)


def download(
    api: ServerApi,
    task_id: int,
    name: str,
    lease_token: str,
    destination: Path,
    *,
    expected_sha256: str | None,
) -> None:
    """GET the artifact into `destination`, whole and checked, or raise and leave nothing."""
    if not NAME_PATTERN.fullmatch(name):
        raise ArtifactRefused(f"bad artifact name {name!r}", 422)
    url = f"/v1/tasks/{int(task_id)}/artifacts/{name}"
    destination.parent.mkdir(parents=True, exist_ok=True)
    temporary = destination.with_name(destination.name + ".part")
    try:
        with api.client.stream("GET", url, headers=_headers(api, None, lease_token)) as response:
            _check_status(response, url)
            announced = response.headers.get(SHA256_HEADER)
            digest = _write_stream(response, temporary)
        for wanted in (announced, expected_sha256):
            if wanted is not None and wanted.lower() != digest:
                raise StoreUnavailable(f"GET {url}: sha256 {digest} does not match {wanted}")
        os.replace(temporary, destination)
    except httpx.HTTPError as exc:
        raise StoreUnavailable(f"GET {url}: {type(exc).__name__}: {exc}") from None
    finally:
        temporary.unlink(missing_ok=True)


def _write_stream(response: httpx.Response, path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("wb") as handle:
        for chunk in response.iter_bytes(CHUNK_BYTES):
            digest.update(chunk)
            handle.write(chunk)
    return digest.hexdigest()


def _chunks(handle: IO[bytes], cancel: threading.Event | None) -> Iterator[bytes]:
    while chunk := handle.read(CHUNK_BYTES):
        if cancel is not None and cancel.is_set():
            raise Cancelled("upload called off")  # aborts the request mid-body
        yield chunk


def _headers(api: ServerApi, credential: str | None, lease_token: str) -> dict[str, str]:
    headers = {LEASE_TOKEN_HEADER: lease_token}
    credential = credential or api.credential
    if credential:
        headers[WORKER_CREDENTIAL_HEADER] = credential
    return headers


def _stored(response: httpx.Response, url: str) -> ArtifactPublic:
    _check_status(response, url)
    try:
        return ArtifactPublic.model_validate(response.json())
    except ValueError as exc:  # a ValidationError is one too
        raise StoreUnavailable(f"PUT {url}: unexpected answer ({exc})") from None


def _check_status(response: httpx.Response, url: str) -> None:
    status = response.status_code
    if status < 400:
        return
    response.read()
    text = f"{response.request.method} {url}: HTTP {status}: {_detail(response)}"
    if status >= 500 or status == 429:  # 503 unavailable, 507 full, a crash: later
        raise StoreUnavailable(text)
    raise ArtifactRefused(text, status)


def _detail(response: httpx.Response) -> str:
    try:
        return str(response.json().get("detail", response.text))[:300]
    except (ValueError, AttributeError):
        return response.text[:300]
