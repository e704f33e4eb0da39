"""The artifact store on S3-compatible object storage (AWS S3, MinIO, Ceph...), through boto3.

A write is a multipart upload, completed only on commit (after the server checked the sha256):
until then no object exists under the key, and an aborted upload leaves nothing behind (an
upload a killed server never aborted is invisible too; a bucket lifecycle rule
`AbortIncompleteMultipartUpload` reclaims its parts). An object smaller than one part is one
PUT at commit. Parts are PART_BYTES, so memory holds at most one part per upload.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import boto3  # type: ignore[import-untyped]
from botocore.config import Config  # type: ignore[import-untyped]
from botocore.exceptions import BotoCoreError, ClientError  # type: ignore[import-untyped]

from server.artifacts.base import (
    CHUNK_BYTES,
    ArtifactNotFoundError,
    StoreError,
    StoreFullError,
    StoreUnavailableError,
)
from server.config import Settings

# S3's smallest part (but the last) is 5 MiB.
PART_BYTES = 8 * 1024 * 1024
_FULL_CODES = {"EntityTooLarge", "QuotaExceeded", "XMinioStorageFull", "InsufficientStorage"}
_MISSING_CODES = {"NoSuchKey", "404", "NotFound"}


def store_error(exc: Exception, what: str) -> StoreError:
    """Full (quota, storage full) as StoreFullError; anything else, including an endpoint
    that does not answer, as StoreUnavailableError. Never the credentials, never a trace."""
    code = exc.response.get("Error", {}).get("Code", "") if isinstance(exc, ClientError) else ""
    kind = StoreFullError if code in _FULL_CODES else StoreUnavailableError
    detail = code or type(exc).__name__
    return kind(f"artifact store: {what}: {detail}")


class S3Writer:
    """Buffers up to one part; starts a multipart upload once more than one part is needed."""

    def __init__(self, client: Any, bucket: str, key: str) -> None:
        self._client, self._bucket, self._key = client, bucket, key
        self._buffer = bytearray()
        self._upload_id: str | None = None
        self._parts: list[dict[str, Any]] = []

    def write(self, chunk: bytes) -> None:
        self._buffer += chunk
        while len(self._buffer) >= PART_BYTES:
            self._send_part(bytes(self._buffer[:PART_BYTES]))
            del self._buffer[:PART_BYTES]

    def _send_part(self, body: bytes) -> None:
        try:
            if self._upload_id is None:
                started = self._client.create_multipart_upload(Bucket=self._bucket, Key=self._key)
                self._upload_id = started["UploadId"]
            number = len(self._parts) + 1
            sent = self._client.upload_part(
                Bucket=self._bucket,
                Key=self._key,
                UploadId=self._upload_id,
                PartNumber=number,
                Body=body,
            )
        except (BotoCoreError, ClientError) as exc:
            raise store_error(exc, "upload failed") from exc
        self._parts.append({"PartNumber": number, "ETag": sent["ETag"]})

    def commit(self) -> None:
        try:
            if self._upload_id is None:
                self._client.put_object(
                    Bucket=self._bucket, Key=self._key, Body=bytes(self._buffer)
                )
                return
            if self._buffer:
                self._send_part(bytes(self._buffer))
            self._client.complete_multipart_upload(
                Bucket=self._bucket,
                Key=self._key,
                UploadId=self._upload_id,
                MultipartUpload={"Parts": self._parts},
            )
        except (BotoCoreError, ClientError) as exc:
            self.abort()
            raise store_error(exc, "commit failed") from exc
        finally:
            self._buffer.clear()

    def abort(self) -> None:
        self._buffer.clear()
        if self._upload_id is None:
            return
        try:
            self._client.abort_multipart_upload(
                Bucket=self._bucket, Key=self._key, UploadId=self._upload_id
            )
        except (BotoCoreError, ClientError):
            pass  # invisible anyway; the bucket's lifecycle rule reclaims the parts
        self._upload_id = None


class S3Store:
    """Objects under `prefix` in `bucket`."""

    def __init__(self, client: Any, bucket: str, prefix: str = "") -> None:
        self._client = client
        self._bucket = bucket
        self._prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.location = f"s3://{bucket}/{self._prefix}"

    @classmethod
    def from_settings(cls, settings: Settings, *, bucket: str, prefix: str) -> S3Store:
        # Few, short retries: an unreachable store must answer an upload with a 503 in
        # seconds, not hold the worker for minutes.
        config = Config(
            connect_timeout=3, read_timeout=30, retries={"max_attempts": 2, "mode": "standard"}
        )
        client = boto3.session.Session().client(
            "s3",
            endpoint_url=settings.artifacts_s3_endpoint_url or None,
            region_name=settings.artifacts_s3_region or None,
            aws_access_key_id=settings.artifacts_s3_access_key_id or None,
            aws_secret_access_key=settings.artifacts_s3_secret_access_key or None,
            config=config,
        )
        return cls(client, bucket, prefix)

    def writer(self, key: str) -> S3Writer:
        return S3Writer(self._client, self._bucket, self._prefix + key)

    def read(self, key: str) -> Iterator[bytes]:
        try:
            answer = self._client.get_object(Bucket=self._bucket, Key=self._prefix + key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in _MISSING_CODES:
                raise ArtifactNotFoundError(f"no artifact object {key!r}") from None
            raise store_error(exc, "read failed") from exc
        except BotoCoreError as exc:
            raise store_error(exc, "read failed") from exc
        return _chunks(answer["Body"])

    def delete(self, key: str) -> None:
        try:
            self._client.delete_object(Bucket=self._bucket, Key=self._prefix + key)
        except (BotoCoreError, ClientError) as exc:
            raise store_error(exc, "delete failed") from exc

    def keys(self, prefix: str = "", *, older_than: float | None = None) -> Iterator[str]:
        pages = self._client.get_paginator("list_objects_v2").paginate(
            Bucket=self._bucket, Prefix=self._prefix + prefix
        )
        cutoff = None if older_than is None else time.time() - older_than
        try:
            for page in pages:
                for item in page.get("Contents", []):
                    if cutoff is None or item["LastModified"].timestamp() < cutoff:
                        yield item["Key"].removeprefix(self._prefix)
        except (BotoCoreError, ClientError) as exc:
            raise store_error(exc, "list failed") from exc


def _chunks(body: Any) -> Iterator[bytes]:
    try:
        yield from body.iter_chunks(CHUNK_BYTES)
    finally:
        body.close()
