"""Streaming an upload into the store (counted, hashed, limited, committed only when whole and
matching its sha256) and a download out of it (verified against the recorded sha256)."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

from server.artifacts.base import CHUNK_BYTES, ArtifactStore, ArtifactWriter

log = logging.getLogger("morphml.server")


class TooLargeError(Exception):
    """The upload is over a limit; the message names it (413)."""


class ChecksumMismatchError(Exception):
    """The bytes received do not hash to the sha256 sent with them (422); nothing was kept."""


@dataclass(frozen=True)
class Received:
    size: int
    sha256: str


class Upload:
    """One object being received: every byte counted against `max_bytes` and hashed on its way
    to the writer; `finish` commits only when the digest matches."""

    def __init__(self, writer: ArtifactWriter, *, max_bytes: int, limit: str) -> None:
        self._writer = writer
        self._max_bytes = max_bytes
        self._limit = limit
        self._hash = hashlib.sha256()
        self.size = 0

    def feed(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self._max_bytes:
            raise TooLargeError(self._limit)
        self._hash.update(chunk)
        self._writer.write(chunk)

    def finish(self, expected_sha256: str) -> Received:
        digest = self._hash.hexdigest()
        if digest != expected_sha256:
            raise ChecksumMismatchError(
                f"the body's sha256 is {digest}, not {expected_sha256}: nothing was kept"
            )
        self._writer.commit()
        return Received(self.size, digest)

    def abort(self) -> None:
        self._writer.abort()


async def receive(
    store: ArtifactStore,
    key: str,
    chunks: AsyncIterator[bytes],
    *,
    max_bytes: int,
    limit: str,
    sha256: str,
) -> Received:
    """Stream `chunks` into `key`. The request's small chunks are gathered into CHUNK_BYTES
    before each write, and every store call runs on a thread: the event loop never blocks on
    a disk or on S3, and memory holds at most a chunk or two per upload."""
    upload = Upload(await asyncio.to_thread(store.writer, key), max_bytes=max_bytes, limit=limit)
    try:
        pending = bytearray()
        async for chunk in chunks:
            pending += chunk
            if len(pending) > max_bytes - upload.size:
                raise TooLargeError(limit)  # before writing what is over the limit
            if len(pending) >= CHUNK_BYTES:
                await asyncio.to_thread(upload.feed, bytes(pending))
                pending.clear()
        await asyncio.to_thread(upload.feed, bytes(pending))
        return await asyncio.to_thread(upload.finish, sha256)
    except BaseException:
        await asyncio.shield(asyncio.to_thread(upload.abort))
        raise


def verified(chunks: Iterator[bytes], sha256: str, what: str) -> Iterator[bytes]:
    """`chunks` passed through and hashed; a digest other than the recorded one ends the
    stream with an error, so the client sees a broken transfer, never bytes that look whole."""
    digest = hashlib.sha256()
    for chunk in chunks:
        digest.update(chunk)
        yield chunk
    if digest.hexdigest() != sha256:
        log.error("artifact %s: stored bytes do not match their sha256 (corrupted)", what)
        raise ChecksumMismatchError(f"artifact {what}: stored bytes do not match their sha256")
