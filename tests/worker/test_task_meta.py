"""The claimed candidate's `meta` reaches the evaluator as `morphml.evaluators.context.meta()`
(the `weight_sharing` optimizer tells the `train` evaluator that a task is a supernet this way)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from morphml.evaluators import context
from tests.worker.fakes import (
    AgentThread,
    FakeEvaluation,
    FakeServer,
    make_agent,
    make_task,
    wait_for,
)
from worker.child import task_context

META = {"phase": "supernet", "search": {"method": "darts", "top_k": 2}, "space": {"type": "cell"}}


@pytest.mark.parametrize(("candidate_meta", "expected"), [(META, META), (None, {}), ({}, {})])
def test_the_agent_puts_the_candidates_meta_in_the_spec(
    tmp_path: Path, candidate_meta: dict[str, Any] | None, expected: dict[str, Any]
) -> None:
    specs: list[dict[str, Any]] = []

    def start(task_dir: Path, spec: dict[str, Any], env: dict[str, str]) -> FakeEvaluation:
        specs.append(spec)
        return FakeEvaluation()

    task = make_task(1)
    task["candidate"] = {**task["candidate"], "meta": candidate_meta}
    server = FakeServer(tasks=[task])
    run = AgentThread(make_agent(server, tmp_path / "work", start_evaluation=start))
    wait_for(lambda: server.bodies("/complete"))
    run.stop()
    assert [spec["meta"] for spec in specs] == [expected]


@pytest.mark.parametrize(
    ("spec", "expected"),
    [({"meta": META}, META), ({}, {}), ({"meta": None}, {}), ({"meta": ["not", "a", "dict"]}, {})],
)
def test_the_evaluation_process_binds_the_specs_meta(
    tmp_path: Path, spec: dict[str, Any], expected: dict[str, Any]
) -> None:
    with context.bound(task_context(tmp_path, spec, lambda message: None)):
        seen = context.meta()
        seen["phase"] = "changed by the evaluator"  # a copy: the bound context keeps its own
        assert context.meta() == expected
    assert context.meta() == {}  # outside a task
