"""The artifact store's interface and its errors."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

# What a read or a buffered write moves at a time: large enough that per-chunk costs vanish,
# small enough that a few concurrent transfers never hold much memory.
CHUNK_BYTES = 1024 * 1024


class StoreError(Exception):
    """The store could not do what was asked; the message says why, in one line."""


class StoreFullError(StoreError):
    """No space left (a full disk or a quota): 507 to an upload."""


class StoreUnavailableError(StoreError):
    """The store does not answer or refuses access: 503 to an upload or a download."""


class ArtifactNotFoundError(StoreError):
    """No object under this key."""


class ArtifactWriter(Protocol):
    """One object being written: nothing is visible under its key until `commit` returns."""

    def write(self, chunk: bytes) -> None: ...

    def commit(self) -> None:
        """Make the object visible, whole, under its key (replacing one already there)."""

    def abort(self) -> None:
        """Drop what was written; never raises."""


class ArtifactStore(Protocol):
    """Objects by key (`/`-separated, built by the server from validated names only)."""

    location: str  # for logs and errors; never holds credentials

    def writer(self, key: str) -> ArtifactWriter: ...

    def read(self, key: str) -> Iterator[bytes]:
        """The object's bytes in chunks; ArtifactNotFoundError when it is absent."""

    def delete(self, key: str) -> None:
        """Remove the object; an absent one is not an error."""

    def keys(self, prefix: str = "", *, older_than: float | None = None) -> Iterator[str]:
        """Every visible key under `prefix` (never a half-written one); `older_than`: only
        those last written more than that many seconds ago."""
