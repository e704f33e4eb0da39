"""The child process: results, intermediate reports, crashes, refusals and stopping, for real."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

from morphml import Layer, SearchSpace
from worker.runner import ChildProcess, Outcome
from worker.task_run import Slot, child_env

ROOT = Path(__file__).resolve().parents[2]


def tiny_architecture() -> dict[str, Any]:
    space = SearchSpace("tiny").add_layers(Layer.input(shape=(4,)), Layer.output(units=2))
    return space.sample(0).to_dict()


def start(
    tmp_path: Path, function: str, allow: str = "tests.worker", **params: Any
) -> ChildProcess:
    return start_with(tmp_path, {"function": function, **params}, allow)


def start_with(tmp_path: Path, params: dict[str, Any], allow: str = "tests.worker") -> ChildProcess:
    spec = {
        "architecture": tiny_architecture(),
        "budget": 3.0,
        "evaluator": {"kind": "python", "params": params},
    }
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MORPHML_ALLOW": allow}
    return ChildProcess(tmp_path / "task", spec, env).start()


def wait(child: ChildProcess, timeout: float = 20.0) -> Outcome:
    deadline = time.monotonic() + timeout
    while (outcome := child.poll()) is None:
        assert time.monotonic() < deadline, "the child did not finish"
        time.sleep(0.02)
    return outcome


def test_a_result_and_its_reports_come_back(tmp_path: Path) -> None:
    child = start(tmp_path, "tests.worker.user_functions:good")
    outcome = wait(child)
    assert outcome.metrics == {"val_accuracy": 0.75, "num_params": 10.0, "budget": 3.0}
    assert child.read_reports() == [{"step": 1.0, "progress": 0.5, "val_accuracy": 0.5}]
    assert child.read_reports() == []


def test_an_exception_is_a_retryable_failure_with_its_text(tmp_path: Path) -> None:
    outcome = wait(start(tmp_path, "tests.worker.user_functions:raises"))
    assert outcome.metrics is None and outcome.retryable
    assert outcome.error is not None and "RuntimeError: boom in user code" in outcome.error


def test_a_hard_exit_is_a_retryable_failure(tmp_path: Path) -> None:
    outcome = wait(start(tmp_path, "tests.worker.user_functions:exits"))
    assert outcome.retryable and outcome.error is not None
    assert "exited with code 3 without a result" in outcome.error


def test_a_module_off_the_allow_list_fails_for_good(tmp_path: Path) -> None:
    outcome = wait(start(tmp_path, "tests.worker.user_functions:good", allow="other,tests.work"))
    assert not outcome.retryable and outcome.error is not None
    assert "not on this worker's allow-list" in outcome.error and "--allow" in outcome.error


def test_a_nan_metric_is_not_a_result(tmp_path: Path) -> None:
    outcome = wait(start(tmp_path, "tests.worker.user_functions:returns_nan"))
    assert not outcome.retryable and outcome.error is not None and "finite" in outcome.error


def test_stop_ends_a_hanging_child(tmp_path: Path) -> None:
    child = start(tmp_path, "tests.worker.user_functions:sleeps")
    time.sleep(0.3)
    assert child.poll() is None
    started = time.monotonic()
    child.stop()
    assert time.monotonic() - started < 6
    outcome = child.poll()
    assert outcome is not None and outcome.error is not None and "SIGTERM" in outcome.error


@pytest.mark.parametrize("params", [{"function": "no_colon"}, {}])
def test_a_bad_function_name_fails_for_good(tmp_path: Path, params: dict[str, Any]) -> None:
    outcome = wait(start_with(tmp_path, params))
    assert not outcome.retryable and outcome.error is not None and "function" in outcome.error


def test_a_sitecustomize_where_the_agent_started_does_not_run_in_the_child(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    start_dir = tmp_path / "start"
    start_dir.mkdir()
    marker = tmp_path / "sitecustomize-ran"
    (start_dir / "sitecustomize.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    monkeypatch.chdir(start_dir)
    # What the operator configured: the allowed module's location, and nothing else.
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    env = child_env(Slot(0, None, 1), ["tests.worker"])
    spec = {
        "architecture": tiny_architecture(),
        "budget": 3.0,
        "evaluator": {"kind": "python", "params": {"function": "tests.worker.user_functions:good"}},
    }
    outcome = wait(ChildProcess(tmp_path / "task", spec, env).start())
    assert outcome.metrics is not None, outcome.error  # the allowed module was still found
    assert not marker.exists()


def test_the_childs_path_is_the_operators_pythonpath_made_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(["lib", "", "/opt/models"]))
    env = child_env(Slot(0, None, 1), [])
    assert env["PYTHONPATH"] == os.pathsep.join([str(tmp_path / "lib"), "/opt/models"])
    monkeypatch.delenv("PYTHONPATH")
    assert "PYTHONPATH" not in child_env(Slot(0, None, 1), [])
