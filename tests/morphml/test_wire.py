"""The wire models: one definition shared by server, client and worker; ids are integers."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from morphml import wire


def claimed(**overrides: Any) -> dict[str, Any]:
    return {
        "id": 12,
        "experiment_id": 3,
        "candidate": {"architecture": {}, "budget": None, "meta": {}},
        "evaluator": {"kind": "proxy", "params": {}},
        "objectives": [{"metric": "val_accuracy", "direction": "maximize"}],
        "budget": None,
        "attempt": 1,
        "lease_token": "t",
        "lease_expires_at": "2026-01-01T00:00:00Z",
        "lease_seconds": 60,
        **overrides,
    }


def test_a_claim_answer_parses_into_typed_fields() -> None:
    task = wire.ClaimedTask.model_validate(claimed())
    assert task.id == 12 and task.evaluator.kind == "proxy"
    assert task.lease_expires_at == datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("field", "value"),
    [("id", "../../../victim"), ("id", None), ("attempt", "1/../x"), ("experiment_id", 1.5)],
)
def test_ids_that_are_not_integers_are_malformed(field: str, value: Any) -> None:
    with pytest.raises(ValidationError, match=field):
        wire.ClaimedTask.model_validate(claimed(**{field: value}))


def test_fields_a_newer_server_adds_are_ignored() -> None:
    assert wire.ClaimedTask.model_validate(claimed(priority=5)).id == 12


def test_heartbeat_metrics_must_be_finite() -> None:
    with pytest.raises(ValidationError, match="finite"):
        wire.HeartbeatRequest(lease_token="t", metrics={"loss": float("nan")})


def test_the_server_declares_exactly_the_wire_models() -> None:
    from server import schemas

    for name in schemas.__all__:
        assert getattr(schemas, name) is getattr(wire, name), name
    assert {"ClaimedTask", "HeartbeatAnswer", "ExperimentCreate"} <= set(schemas.__all__)


def test_an_experiment_tells_its_budget_and_how_many_tasks_are_done() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    experiment = wire.ExperimentPublic(
        id=1, name="e", status="running", priority=0, parallelism=2, lease_seconds=60,
        max_attempts=3, budget=wire.BudgetSpec(max_evaluations=30), spec={}, tasks_created=9,
        counts={"pending": 2, "running": 2, "completed": 3, "failed": 1, "pruned": 1,
                "cancelled": 0},
        best=None, error=None, created_at=now, started_at=now, finished_at=None,
    )  # fmt: skip
    assert experiment.max_evaluations == 30 and experiment.done == 5
