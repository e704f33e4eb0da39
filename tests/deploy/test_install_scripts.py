"""The images' install recipes, run here: deploy/install-server.sh and deploy/install-worker.sh
each install into a fresh virtual environment from a clean copy of the source (what the
Dockerfiles COPY), and the server image's entry point migrates and serves on SQLite.

No image is built (no container engine here); the Dockerfiles do nothing but run these scripts.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import venv
from pathlib import Path

import httpx
import pytest

from morphml.cli.processes import Processes, free_port, wait_ready
from tests.packaging.test_wheel import copy_source

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_source(tmp_path_factory.mktemp("deploy") / "source")


def fresh_venv(path: Path) -> Path:
    venv.create(path, with_pip=True)
    return path / "bin" / "python"


def run_script(
    name: str, source: Path, python: Path, **env: str
) -> subprocess.CompletedProcess[str]:
    # No .pyc compilation: it is most of the 1 GB torch install's time, and proves nothing here.
    environment = {**os.environ, "PYTHON": str(python), "PIP_NO_COMPILE": "1", **env}
    return subprocess.run(
        ["bash", str(DEPLOY / name), str(source)],
        env=environment,
        capture_output=True,
        text=True,
        timeout=400,
    )


def test_server_recipe_installs_without_torch_then_migrates_and_serves(
    source: Path, tmp_path: Path
) -> None:
    python = fresh_venv(tmp_path / "venv")
    result = run_script("install-server.sh", source, python)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "morphml-server installed" in result.stdout
    port, database = free_port(), tmp_path / "data" / "morphml.db"
    database.parent.mkdir()
    env = {
        "PATH": f"{python.parent}:{os.environ['PATH']}",
        "MORPHML_HOST": "127.0.0.1",  # loopback: the image's 0.0.0.0 needs tokens
        "MORPHML_PORT": str(port),
        "MORPHML_DATABASE_URL": f"sqlite:///{database}",
    }
    processes = Processes(tmp_path / "logs")
    processes.start("server", ["sh", str(DEPLOY / "server-entrypoint.sh")], env)
    try:
        wait_ready(f"http://127.0.0.1:{port}", processes)
        assert httpx.get(f"http://127.0.0.1:{port}/healthz").json() == {"status": "ok"}
        ((_, process),) = processes.running
        process.send_signal(signal.SIGTERM)  # `exec`: the shell became the server
        assert process.wait(timeout=30) == 0
    finally:
        processes.stop_all(grace=5.0)
    with sqlite3.connect(database) as connection:
        (revision,) = connection.execute("SELECT version_num FROM alembic_version").fetchone()
    assert revision


def test_worker_recipe_installs_pinned_cpu_torch(source: Path, tmp_path: Path) -> None:
    python = fresh_venv(tmp_path / "venv")
    result = run_script("install-worker.sh", source, python, TORCH="cpu")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "install-worker.sh: torch 2.13.0" in result.stdout
    help_text = subprocess.run(
        [str(python.parent / "morphml-worker"), "--help"], capture_output=True, text=True
    )
    assert "--server" in help_text.stdout


def test_worker_recipe_stops_before_installing_without_the_torch_it_expects(
    source: Path, tmp_path: Path
) -> None:
    # The CUDA image's mode on a base without torch: a clear reason, nothing installed.
    python = fresh_venv(tmp_path / "venv")
    result = run_script("install-worker.sh", source, python, TORCH="preinstalled")
    assert result.returncode == 1
    assert "TORCH=preinstalled but torch does not import" in result.stderr
    assert not (python.parent / "morphml-worker").exists()
    # An unknown mode is refused before pip runs (so this Python is left alone).
    result = run_script("install-worker.sh", source, Path(sys.executable), TORCH="latest")
    assert result.returncode == 2
    assert "TORCH must be cpu or preinstalled" in result.stderr
