"""The store named by the settings' `artifacts_location`."""

from __future__ import annotations

from urllib.parse import urlsplit

from server.artifacts.base import ArtifactStore
from server.artifacts.file_store import FileStore
from server.config import Settings


def open_store(settings: Settings) -> ArtifactStore:
    """`file:///dir` or `s3://bucket/prefix`; anything else is a configuration error."""
    location = settings.artifacts_location
    parts = urlsplit(location)
    if parts.scheme == "file":
        return FileStore(parts.path)
    if parts.scheme == "s3":
        from server.artifacts.s3_store import S3Store  # boto3 only when S3 is configured

        return S3Store.from_settings(settings, bucket=parts.netloc, prefix=parts.path)
    raise ValueError(
        "MORPHML_ARTIFACTS_URL must be file:///absolute/dir or s3://bucket/prefix, "
        f"not {location!r}"
    )
