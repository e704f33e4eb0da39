"""A wheel built from the repository is a working install: it carries the database migrations,
and installed into a fresh venv (not editable) it migrates, serves, and runs a worker that
completes tasks of a small experiment.

The wheel is built from a copy of the files git would check out (tracked and new, not ignored),
so stale build/ output or caches in the working tree cannot leak into it (setuptools would ship a
module deleted since the last in-tree build).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from alembic.script import ScriptDirectory

from morphml import CellSpace
from morphml.cli.processes import free_port, wait_ready

ROOT = Path(__file__).resolve().parents[2]
# The worker extra minus torch: the `tabular` evaluator below never imports it, and installing
# the 1 GB CPU wheel into every fresh venv would be most of this test's time.
NOT_INSTALLED = {"torch"}


def source_files() -> list[Path]:
    """What a fresh clone would hold, plus new files not yet committed (not ignored ones)."""
    listing = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    paths = (ROOT / name for name in listing.split("\0") if name)
    return [path for path in paths if path.is_file()]  # a file deleted but still in the index


def copy_source(target: Path) -> Path:
    for path in source_files():
        destination = target / path.relative_to(ROOT)
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, destination)
    return target


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`python -m build`, as `make wheel` runs it: an sdist, then the wheel built from it."""
    work = tmp_path_factory.mktemp("wheel")
    source = copy_source(work / "source")
    dist = work / "dist"
    command = [sys.executable, "-m", "build", "--outdir", str(dist), str(source)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (built,) = dist.glob("morphml-*.whl")
    return built


def test_the_wheel_carries_the_dashboard(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    static = ROOT / "server" / "ui" / "static"
    expected = {f"server/ui/static/{path.name}" for path in static.iterdir()}
    assert expected <= names, f"missing from the wheel: {sorted(expected - names)}"


def test_the_wheel_carries_every_migration(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    versions = sorted((ROOT / "alembic" / "versions").glob("*.py"))
    assert versions, "alembic/versions is empty"
    expected = {f"server/alembic/versions/{path.name}" for path in versions}
    expected |= {"server/alembic/env.py", "server/alembic/script.py.mako"}
    assert expected <= names, f"missing from the wheel: {sorted(expected - names)}"
    assert not any(name.startswith("alembic/") for name in names), "would shadow the library"


# -- the installed wheel, end to end ------------------------------------------------------------


def clean_env(venv: Path, **extra: str) -> dict[str, str]:
    """The environment of a user who installed the wheel: nothing pointing at this checkout."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("MORPHML_") and name not in ("PYTHONPATH", "VIRTUAL_ENV")
    }
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env.update(extra)
    return env


def worker_requirements(wheel: Path) -> list[str]:
    """The worker extra's requirements, as the wheel's metadata lists them, minus NOT_INSTALLED."""
    with zipfile.ZipFile(wheel) as archive:
        (metadata,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        lines = archive.read(metadata).decode().splitlines()
    requirements = []
    for line in lines:
        if line.startswith("Requires-Dist:") and 'extra == "worker"' in line:
            requirement = line.removeprefix("Requires-Dist:").split(";")[0].strip()
            name = re.split(r"[^A-Za-z0-9._-]", requirement, maxsplit=1)[0]
            if name not in NOT_INSTALLED:
                requirements.append(requirement)
    assert requirements, "the wheel has no worker extra"
    return requirements


def make_venv(wheel: Path, venv: Path) -> None:
    """A bare venv (no pip of its own: this pip installs into it, which saves a minute) holding
    the wheel, its dependencies, and the worker's. --no-compile: byte-compiling every dependency
    costs more than compiling the few modules that the commands below import."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    pip = [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install"]
    command = [*pip, "--quiet", "--no-compile", str(wheel), *worker_requirements(wheel)]
    subprocess.run(command, check=True, timeout=300, env=clean_env(venv), cwd=venv)


def installed_paths(venv: Path, cwd: Path) -> dict[str, str]:
    code = (
        "import json, morphml, server, worker; from server.migrations import script_location; "
        "print(json.dumps({'morphml': morphml.__file__, 'server': server.__file__, "
        "'worker': worker.__file__, 'migrations': str(script_location())}))"
    )
    python = str(venv / "bin" / "python")
    result = subprocess.run(
        [python, "-c", code], cwd=cwd, env=clean_env(venv), capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    paths: dict[str, str] = json.loads(result.stdout)
    return paths


class Started:
    """The processes this test started, in `cwd` (outside the checkout), logging there; each is
    stopped (TERM, then KILL) at the end."""

    def __init__(self, cwd: Path) -> None:
        self.cwd = cwd
        self.processes: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        with (self.cwd / f"{name}.log").open("wb") as log:
            process = subprocess.Popen(
                argv,
                cwd=self.cwd,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.processes.append((name, process))

    def check_alive(self) -> None:
        for name, process in self.processes:
            if process.poll() is not None:
                log = (self.cwd / f"{name}.log").read_text()[-3000:]
                raise AssertionError(f"{name} exited with {process.returncode}:\n{log}")

    def stop_all(self) -> None:
        """Newest first: the worker hands back its task while the server still listens."""
        for _, process in reversed(self.processes):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()


@pytest.fixture
def started(tmp_path: Path) -> Iterator[Started]:
    run = tmp_path / "run"
    run.mkdir()
    processes = Started(run)
    yield processes
    processes.stop_all()


def tabular_spec() -> dict[str, Any]:
    return {
        "name": "wheel",
        "search_space": CellSpace().to_dict(),
        "optimizer": {"name": "random", "params": {}},
        "objectives": [{"metric": "val_accuracy", "direction": "maximize"}],
        "evaluator": {"kind": "tabular", "params": {"dataset": "cifar10"}},
        "budget": {"max_evaluations": 2},
        "parallelism": 1,
        "seed": 0,
    }


def wait_finished(url: str, experiment_id: int, started: Started, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        started.check_alive()
        experiment: dict[str, Any] = httpx.get(f"{url}/v1/experiments/{experiment_id}").json()
        if experiment["status"] not in ("pending", "running"):
            return experiment
        time.sleep(0.5)
    raise AssertionError(f"the experiment did not finish within {timeout:.0f} s")


def migrate(venv: Path, run: Path, database: Path) -> None:
    """`morphml-server migrate` from the wheel brings an empty SQLite file to the head revision."""
    env = clean_env(venv, MORPHML_DATABASE_URL=f"sqlite:///{database}")
    command = [str(venv / "bin" / "morphml-server"), "migrate"]
    result = subprocess.run(command, cwd=run, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    with sqlite3.connect(database) as connection:
        (version,) = connection.execute("SELECT version_num FROM alembic_version").fetchone()
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master")}
    assert version == ScriptDirectory(str(ROOT / "alembic")).get_current_head()
    assert {"experiment", "task", "worker"} <= tables


def serve_and_work(venv: Path, database: Path, started: Started) -> str:
    """Start the wheel's server on the migrated database (migrations off at start: the schema
    that `migrate` made is the one that serves) and one worker; the server's URL."""
    url = f"http://127.0.0.1:{free_port()}"
    env = clean_env(venv, MORPHML_RUN_MIGRATIONS_ON_START="false")
    server = [str(venv / "bin" / "morphml-server"), "serve", "--host", "127.0.0.1"]
    server += ["--port", url.rsplit(":", 1)[1], "--database-url", f"sqlite:///{database}"]
    started.start("server", server, env)
    wait_ready(url, started)
    worker = [str(venv / "bin" / "morphml-worker"), "--server", url, "--gpus", "none"]
    worker += ["--work-dir", str(started.cwd / "worker"), "--poll-seconds", "2"]
    started.start("worker", worker, env)
    return url


@pytest.mark.slow
def test_the_installed_wheel_migrates_serves_and_runs_a_worker(
    wheel: Path, tmp_path: Path, started: Started
) -> None:
    venv, run = tmp_path / "venv", started.cwd
    make_venv(wheel, venv)
    paths = installed_paths(venv, cwd=run)
    for name, path in paths.items():
        assert Path(path).is_relative_to(venv), f"{name} runs from {path}, not the installed wheel"
    assert Path(paths["migrations"]) == Path(paths["server"]).parent / "alembic"

    database = run / "morphml.db"
    migrate(venv, run, database)
    url = serve_and_work(venv, database, started)

    created = httpx.post(f"{url}/v1/experiments", json=tabular_spec(), timeout=30)
    assert created.status_code == 201, created.text
    experiment_id = created.json()["id"]
    experiment = wait_finished(url, experiment_id, started, timeout=120)
    assert experiment["status"] == "completed", experiment
    assert experiment["counts"].get("completed") == 2, experiment  # the budget, all by the worker
    best = httpx.get(f"{url}/v1/experiments/{experiment_id}/best").json()
    assert 0 < best["metrics"]["val_accuracy"] <= 100, best  # a NAS-Bench-201 lookup
