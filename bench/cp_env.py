"""Control-plane bench: the machine notes, fresh databases and the `morphml-server` process.

Every figure is printed beside the load average and a sync-write probe, because the bench
machines are shared: a slow `dd ... oflag=dsync` explains a slow SQLite or Postgres commit.
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psutil
import psycopg

from morphml.cli.processes import free_port, wait_ready

PG_ADMIN = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


@dataclass(frozen=True)
class MachineNote:
    """Load average (1 min) and the time of 100 synchronous 4 KiB writes, taken before a run."""

    load1: float
    dsync_ms: float

    def text(self) -> str:
        return f"load {self.load1:.2f}, dd 100x4k dsync {self.dsync_ms:.0f} ms"


def machine_note(directory: Path) -> MachineNote:
    probe = directory / "dd-probe"
    started = time.perf_counter()
    subprocess.run(
        ["dd", "if=/dev/zero", f"of={probe}", "bs=4k", "count=100", "oflag=dsync"],
        check=True,
        capture_output=True,
    )
    elapsed_ms = (time.perf_counter() - started) * 1000
    probe.unlink(missing_ok=True)
    return MachineNote(load1=os.getloadavg()[0], dsync_ms=elapsed_ms)


def raise_fd_limit() -> None:
    """1,000 long-polling connections need more than the usual 1,024 descriptors (both ends)."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


@contextmanager
def scratch_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="morphml-cp-bench-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@contextmanager
def fresh_postgres(tag: str) -> Iterator[str]:
    """A new database on the local Postgres, dropped afterwards; yields its libpq URL."""
    name = f"morphml_bench_{tag}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def sqlalchemy_url(url: str) -> str:
    """The server's spelling of a database URL (psycopg 3 driver for Postgres)."""
    if url.startswith("postgresql://"):
        return "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return url


class ServerProcess:
    """One `morphml-server serve` on a free loopback port, the way the README runs it."""

    def __init__(self, database_url: str, log_path: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("MORPHML_")}
        args = ["serve", "--host", "127.0.0.1", "--port", str(self.port)]
        args += ["--database-url", sqlalchemy_url(database_url), "--log-level", "warning"]
        self._log = log_path.open("ab")
        self.process = subprocess.Popen(
            [*_server_command(), *args], env=env, stdout=self._log, stderr=subprocess.STDOUT
        )
        self.stats = psutil.Process(self.process.pid)
        wait_ready(self.url, self)

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            raise RuntimeError(f"server exited during start; see {self._log.name}")

    def cpu_seconds(self) -> float:
        times = self.stats.cpu_times()
        return float(times.user + times.system)

    def rss_mb(self) -> float:
        return float(self.stats.memory_info().rss) / 2**20

    def peak_rss_mb(self) -> float:
        """VmHWM: the most resident memory the server has had since it started."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return self.rss_mb()

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._log.close()


@contextmanager
def running_server(database_url: str, log_path: Path) -> Iterator[ServerProcess]:
    server = ServerProcess(database_url, log_path)
    try:
        yield server
    finally:
        server.stop()


def _server_command() -> list[str]:
    script = Path(sys.executable).with_name("morphml-server")
    return [str(script)] if script.exists() else [sys.executable, "-m", "server.cli"]
