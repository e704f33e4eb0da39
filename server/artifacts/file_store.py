"""The embedded artifact store: a directory (by default beside the SQLite database).

A write goes to a hidden temporary file in the object's own directory, is fsynced, and is
renamed over the key only on commit (then the directory is fsynced), so a reader or a restarted
server sees the old object or the new one whole, never a part. Temporary files a killed server
left behind are hidden from `keys` and removed when the store is next opened.
"""

from __future__ import annotations

import errno
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from server.artifacts.base import (
    CHUNK_BYTES,
    ArtifactNotFoundError,
    StoreError,
    StoreFullError,
    StoreUnavailableError,
)

TEMP_PREFIX = ".tmp-"
# A temporary file older than this belongs to no live upload (several servers may share the
# directory, so a younger one is left alone).
STALE_TEMP_SECONDS = 3600.0
_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


def store_error(exc: OSError, what: str) -> StoreError:
    """A full disk or quota as StoreFullError, anything else as StoreUnavailableError."""
    kind = StoreFullError if exc.errno in _FULL else StoreUnavailableError
    return kind(f"artifact store: {what}: {exc.strerror or exc}")


class FileWriter:
    """A temporary file beside the key, renamed over it on commit."""

    def __init__(self, path: Path) -> None:
        self._path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, temp = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=path.parent)
        except OSError as exc:
            raise store_error(exc, "cannot create a file") from exc
        self._temp = Path(temp)
        self._file: IO[bytes] = os.fdopen(fd, "wb")

    def write(self, chunk: bytes) -> None:
        try:
            self._file.write(chunk)
        except OSError as exc:
            raise store_error(exc, "write failed") from exc

    def commit(self) -> None:
        try:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            os.replace(self._temp, self._path)
            _fsync_directory(self._path.parent)
        except OSError as exc:
            self.abort()
            raise store_error(exc, "commit failed") from exc

    def abort(self) -> None:
        self._file.close()
        self._temp.unlink(missing_ok=True)


class FileStore:
    """Objects as files under `root`; keys are relative paths."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.location = f"file://{self.root}"
        self._remove_stale_temporaries()

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root.resolve()) or path.name.startswith(TEMP_PREFIX):
            raise ValueError(f"artifact key outside the store: {key!r}")
        return path

    def writer(self, key: str) -> FileWriter:
        return FileWriter(self._path(key))

    def read(self, key: str) -> Iterator[bytes]:
        try:
            file = self._path(key).open("rb")
        except FileNotFoundError:
            raise ArtifactNotFoundError(f"no artifact object {key!r}") from None
        except OSError as exc:
            raise store_error(exc, "read failed") from exc
        return _chunks(file)

    def delete(self, key: str) -> None:
        path = self._path(key)
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            raise store_error(exc, "delete failed") from exc
        _remove_empty_parents(path.parent, self.root)

    def keys(self, prefix: str = "", *, older_than: float | None = None) -> Iterator[str]:
        if not self.root.is_dir():
            return
        cutoff = None if older_than is None else time.time() - older_than
        for directory, _, files in os.walk(self.root):
            for name in sorted(files):
                key = Path(directory, name).relative_to(self.root).as_posix()
                if name.startswith(TEMP_PREFIX) or not key.startswith(prefix):
                    continue
                if cutoff is None or _modified(Path(directory, name)) < cutoff:
                    yield key

    def _remove_stale_temporaries(self) -> None:
        if not self.root.is_dir():
            return
        cutoff = time.time() - STALE_TEMP_SECONDS
        for temp in self.root.rglob(f"{TEMP_PREFIX}*"):
            try:
                if temp.stat().st_mtime < cutoff:
                    temp.unlink()
            except OSError:
                pass  # another server's, gone already, or not ours to remove


def _chunks(file: IO[bytes]) -> Iterator[bytes]:
    with file:
        while chunk := file.read(CHUNK_BYTES):
            yield chunk


def _fsync_directory(directory: Path) -> None:
    """The rename itself survives a power cut only once its directory is fsynced."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove_empty_parents(directory: Path, root: Path) -> None:
    while directory != root and directory.is_relative_to(root):
        try:
            directory.rmdir()
        except OSError:
            return  # not empty (or in use): it stays
        directory = directory.parent


def _modified(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:  # deleted meanwhile: never a candidate
        return float("inf")
