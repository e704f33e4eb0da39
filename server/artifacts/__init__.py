"""The artifact store: the bytes of task artifacts (weights, checkpoints, evaluator files).

`base.py` is the interface (a writer that makes an object visible only on `commit`), with one
module per backend: `file_store.py` (a directory) and `s3_store.py` (S3-compatible object
storage, through boto3). `stream.py` streams an upload into a writer, counting, hashing and
refusing what is too large or does not match its sha256, and a download back out, verified.
`cleanup.py` deletes the bytes the database has marked for deletion. The rows that name the
bytes live in the `artifact` table, written through `server.store.artifacts`.
"""

from server.artifacts.base import (
    ArtifactNotFoundError,
    ArtifactStore,
    ArtifactWriter,
    StoreError,
    StoreFullError,
    StoreUnavailableError,
)
from server.artifacts.open import open_store

__all__ = [
    "ArtifactNotFoundError",
    "ArtifactStore",
    "ArtifactWriter",
    "StoreError",
    "StoreFullError",
    "StoreUnavailableError",
    "open_store",
]
