"""Start a local `morphml-server` and `morphml-worker` processes, and always stop them again.

Used by `morphml demo` and by the integration tests. Each process runs in its own process group
so that stopping it also stops what it started (a worker's training children).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol

import httpx

from morphml.errors import MorphMLError


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def script(name: str) -> str:
    """The console script installed beside this Python (the venv's bin/)."""
    path = Path(sys.executable).with_name(name)
    if not path.exists():
        raise MorphMLError(f"{name} is not installed beside {sys.executable}")
    return str(path)


class Processes:
    """The processes one run started, stopped together (SIGTERM, then SIGKILL after a grace)."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.running: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = (self.log_dir / f"{name}.log").open("ab")
        process = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
            start_new_session=True,  # its own group: Ctrl-C reaches us, we stop it in order
        )
        log.close()
        self.running.append((name, process))

    def stop_all(self, grace: float = 10.0) -> None:
        """Stop everything started after the first process together, then the first: workers
        hand their tasks back (and drop their long-polls) while the server still listens."""
        first, rest = self.running[:1], self.running[1:]
        for group in (rest, first):
            for _, process in group:
                _signal_group(process, signal.SIGTERM)
            deadline = time.monotonic() + grace
            for _, process in group:
                try:
                    process.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    _signal_group(process, signal.SIGKILL)
                    process.wait()
        self.running.clear()

    def check_alive(self) -> None:
        for name, process in self.running:
            if process.poll() is not None:
                log = self.log_dir / f"{name}.log"
                raise MorphMLError(f"{name} exited with {process.returncode}; see {log}")


def _signal_group(process: subprocess.Popen[bytes], sig: int) -> None:
    if process.poll() is None:
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            pass


class Alive(Protocol):
    """Something that raises when the process(es) it watches have exited (`Processes` is one)."""

    def check_alive(self) -> None: ...


def wait_ready(url: str, processes: Alive, timeout: float = 60.0) -> None:
    """Poll the server's /readyz until it answers 200; fail early if `processes` died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        processes.check_alive()
        try:
            if httpx.get(f"{url}/readyz", timeout=2.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise MorphMLError(f"the server at {url} did not become ready within {timeout:.0f} s")


@contextmanager
def local_cluster(
    run_dir: Path, workers: int, slots: int, database_url: str | None = None
) -> Iterator[str]:
    """A server on a free loopback port plus `workers` workers; yields the server URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    database_url = database_url or f"sqlite:///{run_dir / 'morphml.db'}"
    processes = Processes(run_dir / "logs")
    serve = [script("morphml-server"), "serve", "--host", "127.0.0.1", "--port", str(port)]
    try:
        processes.start("server", [*serve, "--database-url", database_url])
        wait_ready(url, processes)
        threads = str(max(1, (os.cpu_count() or 1) // max(1, workers * slots)))
        for index in range(workers):
            argv = [script("morphml-worker"), "--server", url, "--name", f"demo-worker-{index}"]
            argv += [
                "--slots",
                str(slots),
                "--gpus",
                "auto",
                "--work-dir",
                str(run_dir / f"worker-{index}"),
            ]
            processes.start(f"worker-{index}", argv, {"MORPHML_TORCH_THREADS": threads})
        yield url
    finally:
        processes.stop_all()
