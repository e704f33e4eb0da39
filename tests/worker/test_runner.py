"""The slot's evaluation processes, for real: results, reports, crashes, refusals, stopping,
reuse from task to task, recycling, and results that do not depend on reuse."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

from morphml import Layer, SearchSpace
from worker.runner import ChildTask, Outcome, Recycle, SlotProcesses
from worker.task_run import Slot, child_env

ROOT = Path(__file__).resolve().parents[2]


def tiny_architecture() -> dict[str, Any]:
    space = SearchSpace("tiny").add_layers(Layer.input(shape=(4,)), Layer.output(units=2))
    return space.sample(0).to_dict()


def python_spec(function: str, **params: Any) -> dict[str, Any]:
    return {
        "architecture": tiny_architecture(),
        "budget": 3.0,
        "evaluator": {"kind": "python", "params": {"function": function, **params}},
    }


def user_env(allow: str = "tests.worker") -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "MORPHML_ALLOW": allow}


class Slot1:
    """One slot's processes under tmp_path, and its tasks numbered from 1."""

    def __init__(self, tmp_path: Path, recycle: Recycle | None = None, allow: str = "tests.worker"):
        self.processes = SlotProcesses(tmp_path / "tasks", "slot-0", recycle)
        self.root = tmp_path / "tasks"
        self.env = user_env(allow)
        self.count = 0

    def start(self, spec: dict[str, Any]) -> ChildTask:
        self.count += 1
        return self.processes(self.root / f"{self.count}-1", spec, self.env)

    def run(self, spec: dict[str, Any]) -> Outcome:
        return wait(self.start(spec))

    def pid(self) -> int:
        assert self.processes.child is not None
        return self.processes.child.pid


def wait(task: ChildTask, timeout: float = 60.0) -> Outcome:
    deadline = time.monotonic() + timeout
    while (outcome := task.poll()) is None:
        assert time.monotonic() < deadline, "the child did not finish"
        task.wait(0.5)
    return outcome


@pytest.fixture
def slot(tmp_path: Path) -> Any:
    one = Slot1(tmp_path)
    yield one
    one.processes.close()


def test_a_result_and_its_reports_come_back(slot: Slot1) -> None:
    task = slot.start(python_spec("tests.worker.user_functions:good"))
    outcome = wait(task)
    assert outcome.metrics == {"val_accuracy": 0.75, "num_params": 10.0, "budget": 3.0}
    assert task.read_reports() == [{"step": 1.0, "progress": 0.5, "val_accuracy": 0.5}]
    assert task.read_reports() == []


def test_tasks_share_one_warm_process_and_its_imported_modules(slot: Slot1) -> None:
    first = slot.run(python_spec("tests.worker.user_functions:counts_calls"))
    second = slot.run(python_spec("tests.worker.user_functions:counts_calls"))
    assert first.metrics is not None and second.metrics is not None
    assert first.metrics["pid"] == second.metrics["pid"] == slot.pid()
    assert (first.metrics["calls"], second.metrics["calls"]) == (1.0, 2.0)


def test_a_fresh_process_per_task_when_asked(tmp_path: Path) -> None:
    slot = Slot1(tmp_path, Recycle(max_tasks=1))
    try:
        pids = {slot.run(python_spec("tests.worker.user_functions:counts_calls")).metrics["pid"]  # type: ignore[index]
                for _ in range(3)}  # fmt: skip
        assert len(pids) == 3
    finally:
        slot.processes.close()


def test_a_process_above_the_memory_ceiling_is_replaced(tmp_path: Path) -> None:
    slot = Slot1(tmp_path, Recycle(max_memory_mb=1))
    try:
        first = slot.run(python_spec("tests.worker.user_functions:grows"))
        second = slot.run(python_spec("tests.worker.user_functions:grows"))
        assert first.metrics is not None and second.metrics is not None
        assert first.metrics["pid"] != second.metrics["pid"]
    finally:
        slot.processes.close()


def test_results_do_not_depend_on_reuse(slot: Slot1, tmp_path: Path) -> None:
    """The same task in a fresh process and in a warm one that has run others: same numbers."""
    fresh = Slot1(tmp_path / "fresh", Recycle(max_tasks=1))
    try:
        cold = fresh.run(python_spec("tests.worker.user_functions:draws"))
    finally:
        fresh.processes.close()
    slot.run(python_spec("tests.worker.user_functions:draws"))  # moves every generator on
    slot.run(python_spec("tests.worker.user_functions:good"))
    warm = slot.run(python_spec("tests.worker.user_functions:draws"))
    assert cold.metrics is not None and warm.metrics is not None
    assert cold.metrics["pid"] != warm.metrics["pid"]
    assert {k: v for k, v in cold.metrics.items() if k != "pid"} == {
        k: v for k, v in warm.metrics.items() if k != "pid"
    }


def test_train_gives_the_same_metrics_fresh_and_warm(slot: Slot1, tmp_path: Path) -> None:
    space = SearchSpace("mlp").add_layers(
        Layer.input(shape=(1, 8, 8)), Layer.flatten(), Layer.dense(units=16),
        Layer.output(units=10),
    )  # fmt: skip
    spec = {
        "architecture": space.sample(0).to_dict(),
        "budget": 1.0,
        "evaluator": {
            "kind": "train",
            "params": {"dataset": "digits", "train_size": 200, "val_size": 100, "device": "cpu"},
        },
    }
    fresh = Slot1(tmp_path / "fresh", Recycle(max_tasks=1))
    try:
        cold = fresh.run(spec)
    finally:
        fresh.processes.close()
    slot.run(spec)
    warm = slot.run(spec)
    assert cold.metrics is not None and warm.metrics is not None, (cold.error, warm.error)
    for name in ("val_accuracy", "val_loss", "num_params"):
        assert cold.metrics[name] == warm.metrics[name], name


def test_an_exception_is_a_retryable_failure_with_its_text(slot: Slot1) -> None:
    outcome = slot.run(python_spec("tests.worker.user_functions:raises"))
    assert outcome.metrics is None and outcome.retryable
    assert outcome.error is not None and "RuntimeError: boom in user code" in outcome.error


def test_each_task_has_its_own_log(slot: Slot1) -> None:
    first = slot.run(python_spec("tests.worker.user_functions:prints", n=1))
    second = slot.run(python_spec("tests.worker.user_functions:prints", n=2))
    assert first.error is not None and second.error is not None
    assert "hello from task 1" in first.error and "hello from task 2" not in first.error
    assert "hello from task 2" in second.error and "hello from task 1" not in second.error


def test_a_hard_exit_fails_its_task_and_the_next_task_gets_a_fresh_process(slot: Slot1) -> None:
    before = slot.run(python_spec("tests.worker.user_functions:counts_calls"))
    outcome = slot.run(python_spec("tests.worker.user_functions:exits"))
    assert outcome.retryable and outcome.error is not None
    assert "exited with code 3 without a result" in outcome.error
    after = slot.run(python_spec("tests.worker.user_functions:counts_calls"))
    assert before.metrics is not None and after.metrics is not None
    assert after.metrics["pid"] != before.metrics["pid"] and after.metrics["calls"] == 1.0


def test_a_crash_in_one_slot_leaves_the_other_slots_process_running(tmp_path: Path) -> None:
    one, two = Slot1(tmp_path / "one"), Slot1(tmp_path / "two")
    try:
        two.run(python_spec("tests.worker.user_functions:counts_calls"))
        kept = two.pid()
        assert one.run(python_spec("tests.worker.user_functions:exits")).error is not None
        hung = one.start(python_spec("tests.worker.user_functions:sleeps"))
        time.sleep(0.3)
        hung.stop()  # a timeout, or the server's stop
        again = two.run(python_spec("tests.worker.user_functions:counts_calls"))
        assert again.metrics is not None and again.metrics["pid"] == kept == two.pid()
        assert again.metrics["calls"] == 2.0
    finally:
        one.processes.close()
        two.processes.close()


def test_a_module_off_the_allow_list_fails_for_good(tmp_path: Path) -> None:
    slot = Slot1(tmp_path, allow="other,tests.work")
    try:
        outcome = slot.run(python_spec("tests.worker.user_functions:good"))
    finally:
        slot.processes.close()
    assert not outcome.retryable and outcome.error is not None
    assert "not on this worker's allow-list" in outcome.error and "--allow" in outcome.error


def test_a_nan_metric_is_not_a_result(slot: Slot1) -> None:
    outcome = slot.run(python_spec("tests.worker.user_functions:returns_nan"))
    assert not outcome.retryable and outcome.error is not None and "finite" in outcome.error


def test_stop_ends_a_hanging_child_and_the_slot_starts_a_fresh_one(slot: Slot1) -> None:
    task = slot.start(python_spec("tests.worker.user_functions:sleeps"))
    time.sleep(0.3)
    assert task.poll() is None
    hung = slot.pid()
    started = time.monotonic()
    task.stop()
    assert time.monotonic() - started < 6
    assert task.poll() is not None
    assert slot.pid() != hung  # started ahead of the next task
    assert slot.run(python_spec("tests.worker.user_functions:good")).metrics is not None


@pytest.mark.parametrize("params", [{"function": "no_colon"}, {}])
def test_a_bad_function_name_fails_for_good(slot: Slot1, params: dict[str, Any]) -> None:
    spec = python_spec("x:y")
    spec["evaluator"]["params"] = params
    outcome = slot.run(spec)
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
    processes = SlotProcesses(tmp_path / "tasks", "slot-0")
    try:
        task = processes(
            tmp_path / "tasks" / "1-1", python_spec("tests.worker.user_functions:good"), env
        )
        outcome = wait(task)
    finally:
        processes.close()
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
