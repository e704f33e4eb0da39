"""The agent's writes under its work dir, the health probe, and what to tell an operator about them.

Every file the agent writes for a task (its `spec.json`, outbox entries, probes) goes through
`write_file`, so that a full or read-only disk surfaces as one kind of error, `OSError`, in the
places that decide what to do about it (`worker.health`, `worker.task_run`).
"""

from __future__ import annotations

import errno
import getpass
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

PROBE_TIMEOUT_SECONDS = 30.0


def write_file(path: Path, data: bytes, *, sync: bool = False) -> None:
    """Write `data` to `path` atomically (a temporary file, then a rename); fsynced if `sync`."""
    temporary = path.with_name(path.name + ".tmp")
    try:
        with temporary.open("wb") as handle:
            handle.write(data)
            if sync:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(temporary, path)
    except OSError as exc:
        try:
            temporary.unlink(missing_ok=True)  # a half-written file must not fill the disk
        except OSError:
            pass
        if exc.filename is None:  # a failed write or fsync does not say where
            raise OSError(exc.errno, exc.strerror, str(path)) from exc
        raise


def probe_dir(directory: Path) -> None:
    """Raise `OSError` unless a task could use `directory`: create a subdirectory and an fsynced
    file in it, as a task dir and an outbox entry are made."""
    directory.mkdir(parents=True, exist_ok=True)
    scratch = directory / f".probe-{os.getpid()}-{threading.get_ident()}"
    try:
        scratch.mkdir(exist_ok=True)
        write_file(scratch / "probe", b"ok", sync=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def probe_process() -> None:
    """Raise `OSError` unless this machine can start a Python process, as each evaluation does."""
    try:
        done = subprocess.run(
            [sys.executable, "-c", ""],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=PROBE_TIMEOUT_SECONDS,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise OSError(
            errno.ETIMEDOUT, f"{sys.executable} did not start within {PROBE_TIMEOUT_SECONDS:.0f}s"
        ) from None
    if done.returncode != 0:
        raise OSError(f"{sys.executable} -c '' exited with code {done.returncode}")


def advice(error: BaseException | None, work_dir: Path) -> str:
    """What the operator should do about `error`, in one sentence."""
    move = f"or point --work-dir (MORPHML_WORKER_WORK_DIR) somewhere else than {work_dir}"
    code = error.errno if isinstance(error, OSError) else None
    where = _where(error, work_dir)
    if code in (errno.ENOSPC, errno.EDQUOT):
        return f"free space on the disk that holds {where} (or raise the quota), {move}"
    if code == errno.EROFS:
        return f"remount the file system that holds {where} read-write, {move}"
    if code in (errno.EACCES, errno.EPERM):
        return f"make {work_dir} and what is in it writable by user {_user()}, {move}"
    if code in (errno.ENOTDIR, errno.EEXIST, errno.EISDIR):
        return f"remove what is in the way under {work_dir} (a file where a directory belongs)"
    if code in (errno.EMFILE, errno.ENFILE):
        return "raise the open-files limit (ulimit -n) or run fewer --slots"
    if code in (errno.ENOMEM, errno.EAGAIN):
        return (
            "free memory or raise the process limit (ulimit -u) so that evaluation processes "
            "can start, or run fewer --slots"
        )
    return (
        f"check that {work_dir} is a writable directory on a healthy disk and that "
        f"{sys.executable} can start"
    )


def _where(error: BaseException | None, work_dir: Path) -> Path:
    """The directory `error` is about: `tasks/` or `outbox/` of the work dir, say."""
    name = error.filename if isinstance(error, OSError) else None
    if not isinstance(name, str | bytes):
        return work_dir
    path = Path(os.fsdecode(name))
    try:
        parts = path.relative_to(work_dir).parts
    except ValueError:
        return path.parent
    return work_dir / parts[0] if len(parts) > 1 else work_dir


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())
