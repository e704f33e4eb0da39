"""What the CLI prints and writes, without a server: 80-column tables and progress, one-line
errors, failed counts and first errors, results that carry the candidate, Ctrl-C that keeps the
results so far."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

import morphml.cli.demo as demo_module
import morphml.cli.main as main_module
from morphml import Architecture, CellSpace
from morphml.cli import render
from morphml.cli.demo import DemoOptions, run_demo
from morphml.cli.local_search import LOCAL_COLUMNS, Scored, demo_space, local_rows
from morphml.cli.watch import watch_experiment
from tests.morphml.cli.fakes import FakeClient, experiment, mnist_metrics, task, worker

MORPHML = str(Path(sys.executable).with_name("morphml"))


def printed(*renderables: Any, width: int = 80) -> str:
    console = Console(width=width, file=io.StringIO(), record=True, color_system=None)
    for renderable in renderables:
        console.print(renderable)
    return console.export_text()


def assert_fits(text: str, width: int = 80) -> None:
    assert "…" not in text, text
    assert all(len(line.rstrip()) <= width for line in text.splitlines()), text


def test_the_leaderboards_fit_80_columns_untruncated() -> None:
    mnist = [task(i, mnist_metrics(0.9 + i / 1000)) for i in range(99990, 100000)]
    cells = [
        task(i, {"val_accuracy": 0.9, "train_time": 1234.5, "latency": 0.01}, space=CellSpace())
        for i in range(1, 11)
    ]
    for tasks in (mnist, cells):
        rows = render.result_rows(experiment(), tasks)
        columns = render.leaderboard_columns(experiment(), rows)
        text = printed(render.rows_table(rows, "Leaderboard (200 evaluations)", columns))
        assert_fits(text)
        assert all(column in text for column in columns)
        assert rows[0]["hash"] in text
    assert "train_seconds" in render.leaderboard_columns(
        experiment(), render.result_rows(experiment(), mnist)
    )
    assert "train_time" in render.leaderboard_columns(
        experiment(), render.result_rows(experiment(), cells)
    )


def test_the_local_leaderboard_fits_80_columns_untruncated() -> None:
    scores = {"synflow": 123.456789, "naswot": 1234.56789, "jacob_cov": -65.4321,
              "grad_norm": 12.3456, "num_params": 106122.0, "flops": 1317760.0}  # fmt: skip
    found = [Scored(demo_space().sample(i), scores, 0.123456) for i in range(12)]
    text = printed(render.rows_table(local_rows(found)[:10], "Leaderboard", LOCAL_COLUMNS))
    assert_fits(text)
    assert all(column in text for column in LOCAL_COLUMNS)


def test_the_progress_bar_fits_80_columns_with_workers_running_failed_and_first_error() -> None:
    running = experiment("running", {"completed": 100, "running": 2, "failed": 1}, budget=200)
    done = experiment("completed", {"completed": 198, "failed": 2}, budget=200)
    failed = task(5, None, "failed", error="RuntimeError: CUDA out of memory\n(at train.py:9)")
    client = FakeClient(
        [running, done], tasks=[failed], workers=[worker(1), worker(2), worker(3, "offline")]
    )
    console = Console(width=80, file=io.StringIO(), record=True, color_system=None)
    last = watch_experiment(client, 3, console, poll_seconds=0)  # type: ignore[arg-type]
    text = console.export_text()
    assert last.status == "completed"
    assert_fits(text.replace("CUDA out of memory (at train.py:9)", ""))
    assert "200/200" in text
    assert "workers online 2" in text and "running 0" in text and "failed 2" in text
    assert "busy" not in text
    assert "first error: RuntimeError: CUDA out of memory (at train.py:9)" in text
    assert "experiment 3 completed: 198 completed, 2 failed; best 0.9761" in text


def test_the_progress_bar_shows_the_experiments_own_error() -> None:
    broken = experiment("failed", {"completed": 3}, error="optimizer: boom")
    console = Console(width=80, file=io.StringIO(), record=True, color_system=None)
    watch_experiment(FakeClient([broken]), 3, console, poll_seconds=0)  # type: ignore[arg-type]
    assert "first error: optimizer: boom" in console.export_text()


def test_results_rows_carry_the_candidate_to_rebuild_the_winner() -> None:
    tasks = [task(i, mnist_metrics(0.9 + i / 100)) for i in range(1, 4)]
    rows = render.result_rows(experiment(), tasks)
    best = rows[0]
    assert best["task"] == 3 and best["hash"] == best["candidate_hash"][:12]
    rebuilt = Architecture.from_dict(json.loads(render.rows_json(rows))[0]["architecture"])
    assert rebuilt.hash == best["candidate_hash"] and rebuilt.config == best["config"]
    assert demo_space().build(best["config"]).hash == best["candidate_hash"]
    (first, *_) = csv.DictReader(io.StringIO(render.rows_csv(rows)))
    assert Architecture.from_dict(json.loads(first["architecture"])).hash == first["candidate_hash"]
    assert json.loads(first["config"]) == best["config"]


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (
            "POST /v1/experiments: 422 evaluator.params.epoch: unknown",
            "error: 422 evaluator.params.epoch: unknown",
        ),
        (
            "cannot reach the server at http://x:9: [Errno 111] Connection refused",
            "error: cannot reach the server at http://x:9: Connection refused",
        ),
        ("two\nlines", "error: two lines"),
        ("x" * 200, "error: " + "x" * 72 + "…"),
    ],
)
def test_error_lines_fit_80_columns(
    message: str, expected: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    line = main_module.error_line(message)
    assert line == expected and len(line) <= 80


def run_main(
    monkeypatch: pytest.MonkeyPatch, client: FakeClient, *args: str, columns: int = 80
) -> tuple[int, str]:
    """`morphml ARGS` in this process against `client`; (exit code, what it printed)."""
    out = io.StringIO()
    monkeypatch.setattr(main_module.State, "client", classmethod(lambda cls: client))
    monkeypatch.setattr(main_module, "console", Console(width=80, file=out, color_system=None))
    monkeypatch.setattr(sys, "argv", ["morphml", *args])
    monkeypatch.setenv("COLUMNS", str(columns))
    with pytest.raises(SystemExit) as exited:
        main_module.main()
    code = exited.value.code
    return (code if isinstance(code, int) else 0), out.getvalue()


def test_results_with_nothing_completed_says_so_and_exits_non_zero(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    nothing = experiment("completed", {"failed": 5}, best=None, budget=5)
    failed = [task(i, None, "failed", error=f"EvaluatorError: bad {i}") for i in (7, 6)]
    code, out = run_main(monkeypatch, FakeClient([nothing], tasks=failed), "results", "3")
    err = capsys.readouterr().err
    assert code == 1 and out == ""
    assert err.startswith("error: experiment 3 (completed) has no completed evaluation: 5 failed")
    assert err.count("\n") == 1 and len(err) <= 81
    run_main(monkeypatch, FakeClient([nothing], tasks=failed), "results", "3", columns=200)
    assert capsys.readouterr().err == (
        "error: experiment 3 (completed) has no completed evaluation: 5 failed; "
        "first error: EvaluatorError: bad 6\n"
    )


def test_results_table_shows_failed_counts_and_the_first_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tasks = [task(1, mnist_metrics(0.95)), task(2, None, "failed", error="MemoryError: x")]
    state = experiment("completed", {"completed": 1, "failed": 1})
    code, out = run_main(monkeypatch, FakeClient([state], tasks=tasks), "results", "3")
    assert code == 0
    assert "completed: 1 completed, 1 failed" in out
    assert "first error: MemoryError: x" in out


def test_experiments_list_failed_counts_and_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    class Listing(FakeClient):
        def experiments(self, status: str | None = None) -> list[Any]:
            return [
                experiment("running", {"completed": 4, "failed": 3}, experiment_id=1),
                experiment("failed", {"failed": 1}, error="optimizer: boom", experiment_id=2),
            ]

    code, out = run_main(monkeypatch, Listing([experiment()]), "experiments")
    assert code == 0
    header = next(line for line in out.splitlines() if "status" in line)
    assert "failed" in header and "error" in header
    assert "optimizer: boom" in out
    assert_fits(out)


def test_ctrl_c_in_watch_prints_the_results_so_far_and_exits_130(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    running = experiment("running", {"completed": 2, "running": 2}, budget=30)
    tasks = [task(1, mnist_metrics(0.91)), task(2, mnist_metrics(0.93))]
    client = FakeClient([running], tasks=tasks, interrupt_after=1)
    code, out = run_main(monkeypatch, client, "watch", "3")
    assert code == 130
    assert "Experiment 3 so far: 2 completed, 2 running" in out
    assert render.result_rows(running, tasks)[0]["hash"] in out
    assert "stopped watching; experiment 3 is running on the server" in out


@pytest.fixture
def fake_demo(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    @contextmanager
    def cluster(run_dir: Path, workers: int, slots: int) -> Iterator[str]:
        (run_dir / "logs").mkdir()
        (run_dir / "morphml.db").write_text("")
        yield "http://127.0.0.1:1"

    monkeypatch.setattr(demo_module, "local_cluster", cluster)
    monkeypatch.setattr(demo_module.signal, "signal", lambda *args: None)
    yield


def test_ctrl_c_in_the_demo_writes_the_results_so_far(
    fake_demo: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    running = experiment("running", {"completed": 2, "running": 2}, budget=30)
    tasks = [task(1, mnist_metrics(0.91)), task(2, mnist_metrics(0.93)), task(3, None, "running")]
    client = FakeClient([running], tasks=tasks, interrupt_after=1)
    monkeypatch.setattr(demo_module, "Client", lambda url: client)
    console = Console(width=80, file=io.StringIO(), record=True, color_system=None)
    with pytest.raises(KeyboardInterrupt):
        run_demo(DemoOptions(out=tmp_path), console)
    (run_dir,) = tmp_path.iterdir()
    rows = json.loads((run_dir / "results.json").read_text())
    assert [row["task"] for row in rows] == [2, 1]
    assert (run_dir / "best_model.py").exists() and (run_dir / "convergence.png").exists()
    assert "interrupted: writing the results so far" in console.export_text()


def test_the_demo_closing_line_lists_every_file_it_wrote(
    fake_demo: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    done = experiment("completed", {"completed": 2}, budget=2)
    client = FakeClient([done], tasks=[task(1, mnist_metrics(0.9)), task(2, mnist_metrics(0.8))])
    monkeypatch.setattr(demo_module, "Client", lambda url: client)
    console = Console(width=80, file=io.StringIO(), record=True, color_system=None)
    run_dir = run_demo(DemoOptions(out=tmp_path), console)
    text = console.export_text()
    closing = text.split("wrote ", 1)[1].rstrip("\n")
    written = sorted(p.name + ("/" if p.is_dir() else "") for p in run_dir.iterdir())
    assert closing == f"{run_dir}/: " + ", ".join(written)
    for name in ("results.json", "results.csv", "experiment.json", "best_model.py",
                 "best_architecture.json", "convergence.png", "logs/", "morphml.db"):  # fmt: skip
        assert name in written, name
    best = Architecture.from_json((run_dir / "best_architecture.json").read_text())
    assert best.hash == json.loads((run_dir / "results.json").read_text())[0]["candidate_hash"]
    assert "untrained" in (run_dir / "best_model.py").read_text().splitlines()[0].lower()


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "COLUMNS": "80", "HOME": str(Path.home())}
    return subprocess.run([MORPHML, *args], capture_output=True, text=True, env=env, timeout=60)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["results", "abc"], "error: morphml results: Invalid value for 'experiment_id'"),
        (["bogus"], "error: morphml: No such command 'bogus'."),
        (["--server", "http://127.0.0.1:9", "experiments"], "error: cannot reach the server"),
    ],
)
def test_usage_and_connection_errors_are_one_line_at_80_columns(
    args: list[str], message: str
) -> None:
    result = cli(*args)
    assert result.returncode == 2
    assert result.stderr.startswith(message)
    assert result.stderr.count("\n") == 1 and len(result.stderr.rstrip("\n")) <= 80
    assert "Traceback" not in result.stderr and "╭" not in result.stderr


def test_the_readme_client_import_works_without_slowing_import_morphml() -> None:
    code = (
        "import sys, morphml; lazy = 'morphml.client' not in sys.modules; "
        "from morphml import Client, check_evaluator; "
        "from morphml.client import Client as Direct; "
        "print(lazy, Client is Direct, callable(check_evaluator))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.split() == ["True", "True", "True"]
