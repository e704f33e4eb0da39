"""The agent against a mocked control plane: reports, heartbeats, stop, leases, outbox, shutdown."""

from __future__ import annotations

import itertools
import json
import logging
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.worker.fakes import (
    AgentThread,
    FakeEvaluation,
    FakeServer,
    make_agent,
    make_task,
    wait_for,
)
from worker.agent import plan_slots
from worker.resources import Gpu
from worker.runner import Outcome
from worker.task_run import child_env


def test_a_finished_evaluation_is_completed_with_its_metrics(tmp_path: Path) -> None:
    server = FakeServer(tasks=[make_task(1)])
    run = AgentThread(make_agent(server, tmp_path))
    completed = wait_for(lambda: server.bodies("/v1/tasks/1/complete"))
    assert run.stop() == 0
    assert completed == [{"lease_token": "token-1", "metrics": {"val_accuracy": 0.9}}]
    assert not list((tmp_path / "outbox").glob("*.json"))
    registered = server.bodies("/v1/workers")[0]
    assert registered["resources"] == {"cpus": 2, "memory_mb": 1024, "gpus": [], "slots": 1}
    claim = server.bodies("/v1/tasks/claim")[0]
    assert claim["worker_id"] == 1 and claim["free"] == {"gpus": 0, "gpu_memory_mb": 0}


def test_a_gpu_slot_offers_its_free_memory_or_nothing_when_unreadable(tmp_path: Path) -> None:
    readings: list[int | None] = [9_000, None]
    server = FakeServer()
    agent = make_agent(
        server,
        tmp_path,
        gpus=[Gpu(0, "A", 80_000)],
        free_memory=lambda gpu: readings.pop(0) if readings else None,
    )
    run = AgentThread(agent)
    wait_for(lambda: len(server.bodies("/v1/tasks/claim")) >= 2)
    run.stop()
    offered = [body["free"] for body in server.bodies("/v1/tasks/claim")[:2]]
    assert offered == [{"gpus": 1, "gpu_memory_mb": 9_000}, {"gpus": 0, "gpu_memory_mb": 0}]


def test_a_crashed_evaluation_fails_with_its_reason_and_retry_flag(tmp_path: Path) -> None:
    crash = FakeEvaluation(outcome=Outcome(error="killed by SIGKILL\x00", retryable=True))
    bad = FakeEvaluation(outcome=Outcome(error="EvaluatorError: not allowed", retryable=False))
    server = FakeServer(tasks=[make_task(1), make_task(2)])
    run = AgentThread(make_agent(server, tmp_path, [crash, bad]))
    wait_for(lambda: server.bodies("/v1/tasks/2/fail"))
    run.stop()
    assert server.bodies("/v1/tasks/1/fail") == [
        {"lease_token": "token-1", "error": "killed by SIGKILL", "retryable": True}
    ]
    assert server.bodies("/v1/tasks/2/fail")[0]["retryable"] is False


def test_heartbeats_every_third_of_the_lease_carry_the_latest_report(tmp_path: Path) -> None:
    long_one = FakeEvaluation(seconds=1.5)
    server = FakeServer(tasks=[make_task(1, lease_seconds=0.6)])
    run = AgentThread(make_agent(server, tmp_path, [long_one]))
    wait_for(lambda: server.bodies("/v1/tasks/1/complete"))
    run.stop()
    beats = server.times("/v1/tasks/1/heartbeat")
    assert 4 <= len(beats) <= 8  # 1.5 s at one per 0.2 s (fewer when the machine is busy)
    gaps = [b - a for a, b in itertools.pairwise(beats)]
    assert min(gaps) >= 0.18


def test_reports_reach_the_server_as_progress_step_and_metrics(tmp_path: Path) -> None:
    reports = [
        {"epoch": 1, "step": 1, "progress": 0.5, "val_accuracy": 0.7},
        {"epoch": 2, "step": 2, "progress": 1.0, "val_accuracy": 0.8},
    ]
    evaluation = FakeEvaluation(seconds=0.6, reports=reports)
    server = FakeServer(tasks=[make_task(1, lease_seconds=60)])
    run = AgentThread(make_agent(server, tmp_path, [evaluation]))
    wait_for(lambda: server.bodies("/v1/tasks/1/complete"))
    run.stop()
    beats = server.bodies("/v1/tasks/1/heartbeat")
    # The lease is long: these beats were sent because a report arrived.
    assert {"lease_token": "token-1", "progress": 0.5, "step": 1,
            "metrics": {"epoch": 1, "val_accuracy": 0.7}} in beats  # fmt: skip
    assert beats[-1]["step"] == 2


def test_failed_heartbeats_do_not_stop_the_evaluation(tmp_path: Path) -> None:
    server = FakeServer(tasks=[make_task(1, lease_seconds=0.3)])
    server.script["/v1/tasks/1/heartbeat"] = [httpx.ConnectError("down")] * 20
    run = AgentThread(make_agent(server, tmp_path, [FakeEvaluation(seconds=0.6)]))
    wait_for(lambda: server.bodies("/v1/tasks/1/complete"))
    run.stop()
    assert len(server.bodies("/v1/tasks/1/heartbeat")) >= 2


def test_stop_kills_the_child_and_reports_nothing(tmp_path: Path) -> None:
    evaluation = FakeEvaluation(seconds=30)
    server = FakeServer(tasks=[make_task(1, lease_seconds=0.3)], heartbeat_action="stop")
    run = AgentThread(make_agent(server, tmp_path, [evaluation]))
    wait_for(lambda: evaluation.stopped)
    run.stop()
    assert not server.bodies("/complete") and not server.bodies("/fail")


def test_a_lost_lease_drops_the_task_and_kills_the_child(tmp_path: Path) -> None:
    evaluation = FakeEvaluation(seconds=30)
    server = FakeServer(tasks=[make_task(1, lease_seconds=0.3)])
    server.script["/v1/tasks/1/heartbeat"] = [httpx.Response(409, json={"detail": "stale"})]
    run = AgentThread(make_agent(server, tmp_path, [evaluation]))
    wait_for(lambda: evaluation.stopped)
    run.stop()
    assert not server.bodies("/complete") and not server.bodies("/fail")


def test_a_409_on_complete_counts_as_final(tmp_path: Path) -> None:
    server = FakeServer(tasks=[make_task(1)])
    server.script["/v1/tasks/1/complete"] = [httpx.Response(409, json={"detail": "stale"})]
    run = AgentThread(make_agent(server, tmp_path))
    wait_for(lambda: server.bodies("/v1/tasks/1/complete"))
    run.stop()
    assert len(server.bodies("/v1/tasks/1/complete")) == 1
    assert not list((tmp_path / "outbox").glob("*.json"))


def test_5xx_on_complete_is_retried(tmp_path: Path) -> None:
    server = FakeServer(tasks=[make_task(1)])
    server.script["/v1/tasks/1/complete"] = [httpx.Response(503), httpx.Response(500)]
    run = AgentThread(make_agent(server, tmp_path))
    wait_for(lambda: len(server.bodies("/v1/tasks/1/complete")) == 3)
    run.stop()
    assert not list((tmp_path / "outbox").glob("*.json"))


def test_an_unacknowledged_result_is_redelivered_after_a_restart(tmp_path: Path) -> None:
    down = FakeServer(tasks=[make_task(1)])
    down.script["/v1/tasks/1/complete"] = [httpx.ConnectError("refused")] * 1000
    first = make_agent(down, tmp_path)
    first.delivery_seconds = 0.5
    run = AgentThread(first)
    wait_for(lambda: down.bodies("/v1/tasks/1/complete"))
    run.stop()
    assert len(list((tmp_path / "outbox").glob("*.json"))) == 1

    up = FakeServer()
    run = AgentThread(make_agent(up, tmp_path))
    wait_for(lambda: up.bodies("/v1/tasks/1/complete"))
    run.stop()
    assert up.bodies("/v1/tasks/1/complete") == [
        {"lease_token": "token-1", "metrics": {"val_accuracy": 0.9}}
    ]
    first_call_paths = [path for _, path, _ in up.calls[:2]]
    assert first_call_paths == ["/v1/workers", "/v1/tasks/1/complete"]  # before any claim
    assert not list((tmp_path / "outbox").glob("*.json"))


def test_stop_request_fails_running_tasks_as_retryable_after_the_grace(tmp_path: Path) -> None:
    evaluation = FakeEvaluation(seconds=30)
    server = FakeServer(tasks=[make_task(1, lease_seconds=60)])
    agent = make_agent(server, tmp_path, [evaluation], grace_seconds=0.3)
    run = AgentThread(agent)
    wait_for(lambda: server.bodies("/v1/tasks/claim"))
    wait_for(lambda: agent._running)
    assert run.stop() == 0
    assert evaluation.stopped
    (fail,) = server.bodies("/v1/tasks/1/fail")
    assert fail["retryable"] is True and "shut down" in fail["error"]


def test_abort_kills_running_children_at_once(tmp_path: Path) -> None:
    evaluation = FakeEvaluation(seconds=30)
    agent = make_agent(FakeServer(tasks=[make_task(1)]), tmp_path, [evaluation], grace_seconds=60)
    run = AgentThread(agent)
    wait_for(lambda: agent._running)
    agent.abort()
    assert evaluation.stopped
    run.thread.join(5)
    assert not run.thread.is_alive()


def test_a_task_finishing_within_the_grace_is_completed(tmp_path: Path) -> None:
    server = FakeServer(tasks=[make_task(1, lease_seconds=60)])
    agent = make_agent(server, tmp_path, [FakeEvaluation(seconds=0.5)], grace_seconds=5)
    run = AgentThread(agent)
    wait_for(lambda: agent._running)
    run.stop()
    assert server.bodies("/v1/tasks/1/complete") and not server.bodies("/fail")


def test_an_unknown_worker_registers_again(tmp_path: Path) -> None:
    server = FakeServer(tasks=[make_task(1)])
    server.script["/v1/tasks/claim"] = [httpx.Response(404, json={"detail": "unknown worker"})]
    run = AgentThread(make_agent(server, tmp_path))
    wait_for(lambda: server.bodies("/v1/tasks/1/complete"))
    run.stop()
    assert len(server.bodies("/v1/workers")) == 2
    assert server.bodies("/v1/tasks/claim")[-1]["worker_id"] == 2


def test_registration_refused_exits_with_code_2(tmp_path: Path) -> None:
    server = FakeServer()
    server.script["/v1/workers"] = [httpx.Response(401, json={"detail": "bad token"})]
    assert make_agent(server, tmp_path).run() == 2


def test_a_timed_out_task_fails_for_good(tmp_path: Path) -> None:
    server = FakeServer(tasks=[make_task(1, params={"timeout_seconds": 0.2})])
    run = AgentThread(make_agent(server, tmp_path, [FakeEvaluation(seconds=30)]))
    (fail,) = wait_for(lambda: server.bodies("/v1/tasks/1/fail"))
    run.stop()
    assert fail["retryable"] is False and "timed out" in fail["error"]


def test_a_claim_answer_with_a_path_for_an_id_is_refused_untouched(tmp_path: Path) -> None:
    victim = tmp_path / "victim-1"
    victim.mkdir()
    (victim / "precious.txt").write_text("keep me")
    server = FakeServer(tasks=[{**make_task(1), "id": "../../victim"}])
    evaluation = FakeEvaluation()
    run = AgentThread(make_agent(server, tmp_path / "work", [evaluation]))
    wait_for(lambda: len(server.bodies("/v1/tasks/claim")) >= 2)  # it carries on claiming
    run.stop()
    assert (victim / "precious.txt").read_text() == "keep me"
    assert not server.bodies("/complete") and not server.bodies("/fail")
    assert not evaluation.handed_out and not evaluation.stopped  # never started


def test_metrics_the_api_would_refuse_fail_the_task_for_good(tmp_path: Path) -> None:
    unsendable = FakeEvaluation(outcome=Outcome(metrics={"x" * 300: 0.5}))
    server = FakeServer(tasks=[make_task(1)])
    run = AgentThread(make_agent(server, tmp_path, [unsendable]))
    (fail,) = wait_for(lambda: server.bodies("/v1/tasks/1/fail"))
    run.stop()
    assert fail["retryable"] is False and "metrics do not fit" in fail["error"]
    assert not server.bodies("/complete")


def test_a_report_the_api_would_refuse_still_renews_the_lease(tmp_path: Path) -> None:
    evaluation = FakeEvaluation(seconds=0.4, reports=[{"step": -1, "val_accuracy": 0.5}])
    server = FakeServer(tasks=[make_task(1, lease_seconds=60)])
    run = AgentThread(make_agent(server, tmp_path, [evaluation]))
    wait_for(lambda: server.bodies("/v1/tasks/1/complete"))
    run.stop()
    assert server.bodies("/v1/tasks/1/heartbeat")[0] == {
        "lease_token": "token-1", "progress": None, "step": None, "metrics": None
    }  # fmt: skip


def test_slots_one_per_gpu_or_n_on_the_cpu_sharing_threads() -> None:
    gpus = [Gpu(0, "A", 80_000), Gpu(3, "B", 80_000)]
    assert [(s.gpu.index if s.gpu else None, s.threads) for s in plan_slots(gpus, 16, None)] == [
        (0, 8),
        (3, 8),
    ]
    assert len(plan_slots(gpus, 16, 2)) == 4
    cpu = plan_slots([], 2, 2)
    assert [(s.gpu, s.threads) for s in cpu] == [(None, 1), (None, 1)]
    assert plan_slots([], 1, 4)[0].threads == 1
    assert plan_slots([], 16, 2, threads=3)[0].threads == 3


def test_the_child_gets_its_gpu_threads_and_allow_list_but_not_the_token(
    tmp_path: Path, monkeypatch: object
) -> None:
    import pytest

    assert isinstance(monkeypatch, pytest.MonkeyPatch)
    monkeypatch.setenv("MORPHML_WORKER_TOKEN", "secret")
    agent = make_agent(FakeServer(), tmp_path, allow=["mypkg"])
    env = child_env(plan_slots([Gpu(2, "A", 1)], 8, None)[0], agent.settings.allow)
    assert env["CUDA_VISIBLE_DEVICES"] == "2" and env["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID"
    assert env["MORPHML_TORCH_THREADS"] == "8" and env["MORPHML_ALLOW"] == "mypkg"
    assert "MORPHML_WORKER_TOKEN" not in env
    assert child_env(plan_slots([], 2, 2)[0], [])["CUDA_VISIBLE_DEVICES"] == ""


def test_an_evaluator_error_with_a_lone_surrogate_reaches_the_server(tmp_path: Path) -> None:
    odd = FakeEvaluation(outcome=Outcome(error="FileNotFoundError: 'data-\udcff.npz'"))
    server = FakeServer(tasks=[make_task(1), make_task(2)])
    run = AgentThread(make_agent(server, tmp_path, [odd]))
    wait_for(lambda: server.bodies("/v1/tasks/2/complete"))  # and it carried on
    run.stop()
    assert server.bodies("/v1/tasks/1/fail")[0]["error"] == "FileNotFoundError: 'data-\\udcff.npz'"
    assert not list((tmp_path / "outbox").glob("*"))


def test_bad_entries_left_by_an_earlier_run_neither_crash_the_agent_nor_lose_the_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="morphml.worker")
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    entries = {
        # json.dumps writes the surrogate as an escape; read back, it cannot be sent as UTF-8
        "1-a": {"lease_token": "a", "error": "OSError: 'data-\udcff.npz'", "retryable": True},
        "3-c": {"error": "the evaluator's real error", "retryable": True},  # no lease token
        "4-d": {"lease_token": "d", "metrics": {"val_accuracy": 0.5}},
    }
    for name, body in entries.items():
        outcome = "complete" if "metrics" in body else "fail"
        entry = {"task_id": int(name[0]), "outcome": outcome, "body": body}
        (outbox / f"{name}.json").write_text(json.dumps(entry))
    (outbox / "2-b.json").write_text(
        '{"task_id": 2, "outcome": "complete",'
        ' "body": {"lease_token": "b", "metrics": {"val_accuracy": NaN}}}'
    )
    server = FakeServer(tasks=[make_task(5)])
    run = AgentThread(make_agent(server, tmp_path))
    wait_for(lambda: server.bodies("/v1/tasks/5/complete"))  # it went on to serve
    assert run.stop() == 0
    assert server.bodies("/v1/tasks/1/fail")[0]["error"] == "OSError: 'data-\\udcff.npz'"
    (nan,) = server.bodies("/v1/tasks/2/fail")
    assert nan["retryable"] is False and "val_accuracy" in nan["error"] and "nan" in nan["error"]
    assert not server.bodies("/v1/tasks/3/")
    assert "the evaluator's real error" in caplog.text
    assert server.bodies("/v1/tasks/4/complete")
    assert sorted(p.name for p in outbox.iterdir()) == ["3-c.bad"]


def test_an_outbox_entry_naming_another_endpoint_is_set_aside_unposted(tmp_path: Path) -> None:
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    body = {"lease_token": "a", "error": "x", "retryable": True}
    entry = {"task_id": 1, "outcome": "../../workers", "body": body}
    (outbox / "1-a.json").write_text(json.dumps(entry))
    server = FakeServer()
    run = AgentThread(make_agent(server, tmp_path))
    wait_for(lambda: server.bodies("/v1/tasks/claim"))
    run.stop()
    paths = {path for _, path, _ in server.calls}
    assert paths == {"/v1/workers", "/v1/tasks/claim-batch", "/v1/tasks/claim"}
    assert len(server.bodies("/v1/workers")) == 1  # its registration, nothing else
    assert (outbox / "1-a.bad").exists()


def test_a_result_refused_for_a_lost_lease_is_dropped_and_the_log_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="morphml.worker")
    server = FakeServer(tasks=[make_task(1)])
    stale = httpx.Response(409, json={"detail": "stale lease token"})
    server.script["/v1/tasks/1/complete"] = [stale]
    run = AgentThread(make_agent(server, tmp_path))
    wait_for(lambda: "result dropped" in caplog.text)
    run.stop()
    assert "lease was lost" in caplog.text and "requeued or given to another worker" in caplog.text
    assert "already holds a final answer" not in caplog.text


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ({"attempt": 2}, "5-2"),
        ({"id": "5"}, "5-1"),  # a numeric string is read as the integer it is
        ({"attempt": "../../../victim"}, None),
        ({"id": "5/../../x"}, None),
    ],
)
def test_task_dirs_are_named_from_the_integer_id_and_attempt_only(
    tmp_path: Path, answer: dict[str, object], expected: str | None
) -> None:
    seen: list[Path] = []

    def start(task_dir: Path, spec: dict[str, Any], env: dict[str, str]) -> FakeEvaluation:
        seen.append(task_dir)
        return FakeEvaluation()

    server = FakeServer(tasks=[{**make_task(5), **answer}])
    run = AgentThread(make_agent(server, tmp_path / "work", start_evaluation=start))
    wait_for(lambda: len(server.bodies("/v1/tasks/claim")) >= 2)
    run.stop()
    assert seen == ([tmp_path / "work" / "tasks" / expected] if expected else [])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["work"]
