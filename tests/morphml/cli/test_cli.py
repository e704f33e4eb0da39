"""Every `morphml` command, run as the real console script against a real server and worker."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from morphml import Architecture, Layer, SearchSpace, __version__
from morphml.cli.processes import local_cluster
from morphml.client import Client

pytestmark = pytest.mark.slow
MORPHML = str(Path(sys.executable).with_name("morphml"))


def digits_space() -> SearchSpace:
    return SearchSpace("digits-cnn").add_layers(
        Layer.input(shape=(1, 8, 8)),
        Layer.conv2d(filters=[4, 8], kernel_size=[3, 5]),
        Layer.relu(),
        Layer.flatten(),
        Layer.dense(units=[16, 32]),
        Layer.output(units=10),
    )


def spec(name: str, evaluations: int, **extra: object) -> dict[str, object]:
    return {
        "name": name,
        "search_space": digits_space().to_dict(),
        "optimizer": {"name": "random", "params": {}},
        "objectives": [{"metric": "naswot", "direction": "maximize"}],
        "evaluator": {"kind": "proxy", "params": {"dataset": "digits", "batch_size": 32}},
        "budget": {"max_evaluations": evaluations},
        "parallelism": 2,
        **extra,
    }


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with local_cluster(tmp_path_factory.mktemp("cli"), workers=1, slots=2) as url:
        yield url


def run(url: str, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MORPHML_")}
    env |= {"MORPHML_SERVER": url, "COLUMNS": "200"}
    return subprocess.run(
        [MORPHML, *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=120
    )


@pytest.fixture(scope="module")
def finished(server: str, tmp_path_factory: pytest.TempPathFactory) -> int:
    path = tmp_path_factory.mktemp("spec") / "spec.json"
    path.write_text(json.dumps(spec("finished", 5)))
    result = run(server, "submit", str(path), "--watch")
    assert result.returncode == 0, result.stderr
    assert "completed" in result.stdout
    return int(result.stdout.split()[1])


def test_results_in_three_formats(server: str, finished: int) -> None:
    rows = json.loads(run(server, "results", str(finished), "--format", "json").stdout)
    assert len(rows) == 5
    assert [r["rank"] for r in rows] == [1, 2, 3, 4, 5]
    assert rows[0]["naswot"] >= rows[-1]["naswot"]
    csv = run(server, "results", str(finished), "--format", "csv", "--top", "2").stdout
    assert csv.splitlines()[0].startswith("rank,task,hash")
    assert len(csv.splitlines()) == 3
    table = run(server, "results", str(finished)).stdout
    assert "naswot" in table and rows[0]["hash"] in table


def test_export_pytorch_builds_the_best_model(server: str, finished: int, tmp_path: Path) -> None:
    best = json.loads(run(server, "results", str(finished), "--format", "json").stdout)[0]
    out = tmp_path / "best.py"
    assert run(server, "export", str(finished), "--output", str(out)).returncode == 0
    namespace: dict[str, object] = {"__name__": "exported"}
    exec(compile(out.read_text(), str(out), "exec"), namespace)
    model = namespace["Net"]()  # type: ignore[operator]
    assert sum(p.numel() for p in model.parameters()) == best["params"]
    task = run(server, "export", str(finished), "--task", str(best["task"]), "--format", "json")
    assert json.loads(task.stdout)["nodes"][0]["op"] == "input"


def test_experiments_watch_workers_and_plot(server: str, finished: int, tmp_path: Path) -> None:
    listing = run(server, "experiments").stdout
    assert "finished" in listing and "completed" in listing
    assert "completed" in run(server, "watch", str(finished)).stdout
    assert "cli" in run(server, "workers").stdout or "worker" in run(server, "workers").stdout
    png = tmp_path / "c.png"
    assert run(server, "plot", str(finished), "--output", str(png)).returncode == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_pause_resume_cancel(server: str, tmp_path: Path) -> None:
    path = tmp_path / "spec.yaml"
    import yaml

    # No worker carries this label: the experiment stays running (its tasks pending) until the
    # CLI pauses it, however fast the workers are.
    path.write_text(yaml.safe_dump(spec("lifecycle", 500, resources={"labels": {"pool": "none"}})))
    submitted = run(server, "submit", str(path))
    experiment_id = submitted.stdout.split()[1]
    assert "paused" in run(server, "pause", experiment_id).stdout
    assert "running" in run(server, "resume", experiment_id).stdout
    assert "cancelled" in run(server, "cancel", experiment_id).stdout
    with Client(server) as client:
        assert client.experiment(int(experiment_id)).status == "cancelled"


def test_submit_python_spec(server: str, tmp_path: Path) -> None:
    path = tmp_path / "search.py"
    path.write_text(
        "from morphml import Layer, SearchSpace\n"
        "space = SearchSpace('py-space').add_layers(Layer.input(shape=(1, 8, 8)), Layer.flatten(),"
        " Layer.dense(units=[8, 16]), Layer.output(units=10))\n"
        "experiment = {'evaluator': {'kind': 'proxy', 'params': {'dataset': 'digits'}},"
        " 'objectives': [{'metric': 'naswot'}], 'budget': {'max_evaluations': 2}}\n"
    )
    result = run(server, "submit", str(path), "--watch")
    assert result.returncode == 0, result.stderr
    assert "py-space" in result.stdout and "completed" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["submit", "missing.json"], "missing.json: no such file"),
        (["results", "1", "--format", "xml"], "--format: expected table, json or csv"),
        (["watch", "9999"], "404"),
    ],
)
def test_user_mistakes_are_one_line(server: str, args: list[str], message: str) -> None:
    result = run(server, *args)
    assert result.returncode != 0
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_invalid_spec_shows_the_servers_reason(server: str, tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    bad = spec("bad", 3)
    bad["search_space"] = {"type": "sequential", "name": "x", "layers": [{"type": "conv9d"}]}
    path.write_text(json.dumps(bad))
    result = run(server, "submit", str(path))
    assert result.returncode == 2
    assert "422" in result.stderr and "conv9d" in result.stderr
    assert "Traceback" not in result.stderr


def test_unreachable_server_is_a_clear_error() -> None:
    result = run("http://127.0.0.1:9", "experiments")
    assert result.returncode == 2
    assert "cannot reach the server" in result.stderr


def test_demo_local_writes_a_run_directory(tmp_path: Path) -> None:
    args = ["demo", "--local", "--evaluations", "2", "--out", "out"]
    result = run("http://127.0.0.1:9", *args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    (run_dir,) = (tmp_path / "out").iterdir()
    assert run_dir.name.startswith("local-")
    names = ["best_architecture.json", "best_model.py", "results.csv", "results.json"]
    assert sorted(p.name for p in run_dir.iterdir()) == names
    assert f"wrote {run_dir}/: {', '.join(names)}" in result.stdout
    rows = json.loads((run_dir / "results.json").read_text())
    assert len(rows) == 2 and {"naswot", "config", "architecture"} <= set(rows[0])


def test_demo_tabular_runs_server_and_workers_and_writes_outputs(tmp_path: Path) -> None:
    args = ["demo", "--tabular", "--evaluations", "24", "--out", "out"]
    result = run("http://127.0.0.1:9", *args, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "/docs" in result.stdout
    assert re.search(r"dashboard http://127\.0\.0\.1:\d+/ui/ ", result.stdout)
    (run_dir,) = (tmp_path / "out").iterdir()
    for name in (
        "results.json",
        "results.csv",
        "best_model.py",
        "convergence.png",
        "experiment.json",
    ):
        assert (run_dir / name).exists(), name
    experiment = json.loads((run_dir / "experiment.json").read_text())
    assert experiment["status"] == "completed", experiment
    assert experiment["counts"]["completed"] == 24, experiment["counts"]
    rows = json.loads((run_dir / "results.json").read_text())
    assert len(rows) == 24 and 0 < rows[0]["val_accuracy"] < 1  # a fraction, not percent
    best = Architecture.from_json((run_dir / "best_architecture.json").read_text())
    assert best.hash == rows[0]["candidate_hash"]
    assert "Leaderboard (24 evaluations)" in result.stdout
    written = sorted(p.name + ("/" if p.is_dir() else "") for p in run_dir.iterdir())
    assert f"wrote {run_dir}/: {', '.join(written)}" in result.stdout
    assert {"morphml.db", "logs/", "worker-0/", "worker-1/"} <= set(written)
    leftovers = subprocess.run(["pgrep", "-f", str(run_dir)], capture_output=True, text=True)
    assert leftovers.stdout == ""  # no server or worker left behind


def test_demo_ctrl_c_leaves_no_process_behind(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MORPHML_")}
    argv = [MORPHML, "demo", "--tabular", "--out", "out"]
    with subprocess.Popen(
        argv, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as demo:
        assert demo.stdout is not None
        seen = ""
        for line in demo.stdout:  # wait until the server, workers and experiment are all up
            seen += line
            if "submitted experiment" in line:
                break
        assert "submitted experiment" in seen, seen
        demo.send_signal(signal.SIGINT)
        try:
            demo.communicate(timeout=120)
        finally:
            demo.kill()  # no-op once it exited; never leave it running if the test fails
            # On failure, also what it started (they run in sessions of their own).
            subprocess.run(["pkill", "-KILL", "-f", str(tmp_path)], check=False)
    assert demo.returncode == 130
    (run_dir,) = (tmp_path / "out").iterdir()
    assert (run_dir / "results.json").exists() and (run_dir / "experiment.json").exists()
    leftovers = subprocess.run(["pgrep", "-f", str(run_dir)], capture_output=True, text=True)
    assert leftovers.stdout == ""


def test_plot_pareto_front_for_two_objectives(server: str, tmp_path: Path) -> None:
    two = spec("pareto", 6, optimizer={"name": "nsga2", "params": {"population_size": 4}})
    two["objectives"] = [
        {"metric": "naswot", "direction": "maximize"},
        {"metric": "num_params", "direction": "minimize"},
    ]
    path = tmp_path / "pareto.json"
    path.write_text(json.dumps(two))
    submitted = run(server, "submit", str(path), "--watch")
    assert submitted.returncode == 0, submitted.stderr
    png = tmp_path / "front.png"
    result = run(server, "plot", submitted.stdout.split()[1], "--output", str(png))
    assert result.returncode == 0, result.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_version() -> None:
    result = run("http://127.0.0.1:9", "version")
    assert result.returncode == 0
    assert result.stdout.strip() == __version__
