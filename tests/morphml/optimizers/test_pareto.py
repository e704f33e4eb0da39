"""Pareto fronts, and NSGA-II finding a known front."""

from __future__ import annotations

import random

from morphml import Layer, SearchSpace
from morphml.optimizers import NSGA2, Objective, make_optimizer, pareto_front
from morphml.optimizers.pareto import crowding_distance, dominates, nondominated_sort

MAX_MIN = [{"metric": "acc", "direction": "maximize"}, {"metric": "size", "direction": "minimize"}]


def test_front_of_a_known_set() -> None:
    points = [
        {"acc": 90, "size": 10},  # front
        {"acc": 80, "size": 5},  # front
        {"acc": 85, "size": 12},  # dominated by the first
        None,  # failed run
        {"acc": 95, "size": 30},  # front
        {"acc": 80, "size": 5},  # duplicate of a front point: also on the front
        {"acc": 70},  # a metric is missing
    ]
    assert pareto_front(points, MAX_MIN) == [0, 1, 4, 5]
    assert pareto_front(points, [Objective("acc")]) == [4]
    assert pareto_front([], MAX_MIN) == []


def test_sorting_and_crowding() -> None:
    vectors = [(3.0, 1.0), (2.0, 2.0), (1.0, 3.0), (1.0, 1.0), (0.0, 0.0)]
    assert dominates((2.0, 2.0), (1.0, 1.0)) and not dominates((1.0, 1.0), (1.0, 1.0))
    assert nondominated_sort(vectors) == [[0, 1, 2], [3], [4]]
    crowding = crowding_distance(vectors, [0, 1, 2])
    assert crowding[1] == 2.0 and crowding[0] == crowding[2] > 1e100


def grid_space() -> SearchSpace:
    """Two knobs with a known trade-off: 36 architectures, whose front is the 6 with a == b."""
    return SearchSpace("grid").add_layers(
        Layer.input(shape=(4,)),
        Layer.dense(units=[1, 2, 3, 4, 5, 6]),
        Layer.dense(units=[1, 2, 3, 4, 5, 6]),
        Layer.output(units=2),
    )


def trade_off(config: dict[str, int]) -> dict[str, float]:
    a, b = config["1.units"], config["2.units"]
    # Accuracy grows with a, cost with b, and a > b is penalised: the front is exactly a == b.
    return {"acc": float(min(a, b) * 10 - abs(a - b)), "size": float(b)}


def test_nsga2_finds_the_known_front() -> None:
    optimizer = make_optimizer("nsga2", grid_space(), objectives=MAX_MIN, seed=0, population_size=8)
    assert isinstance(optimizer, NSGA2)
    rng = random.Random(0)
    for _ in range(10):
        batch = optimizer.ask(4)
        rng.shuffle(batch)
        for candidate in batch:
            optimizer.tell(candidate, trade_off(candidate.architecture.config))
    front = {(r["config"]["1.units"], r["config"]["2.units"]) for r in optimizer.front()}
    assert front == {(k, k) for k in range(1, 7)}
