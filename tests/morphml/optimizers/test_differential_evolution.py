"""Differential evolution: greedy selection against the target, binomial crossover, mutation of
choices and numeric ranges, parameter checks (the shared contract is in test_contract.py)."""

from __future__ import annotations

import json
import math
import random
from typing import Any

import pytest

from morphml import FloatRange, IntRange
from morphml.optimizers import (
    Candidate,
    DifferentialEvolution,
    Objective,
    OptimizerError,
    Outcome,
    make_optimizer,
)
from morphml.optimizers.differential_evolution import crossover, mutate
from morphml.space.domains import Choice, Domain
from tests.morphml.spaces import mlp_space, rich_space, small_cell_space

OBJECTIVES = [Objective("val_accuracy")]


def filled(population_size: int = 4, seed: int = 0) -> DifferentialEvolution:
    """An optimizer whose population is full: member i scored i."""
    optimizer = DifferentialEvolution(
        small_cell_space(), OBJECTIVES, seed=seed, population_size=population_size
    )
    for score, candidate in enumerate(optimizer.ask(population_size)):
        optimizer.tell(candidate, {"val_accuracy": float(score)})
    return optimizer


def scores(optimizer: DifferentialEvolution) -> list[float]:
    return [record["score"] for record in optimizer.population]


def test_random_until_the_population_is_full_then_trials_name_their_target() -> None:
    optimizer = DifferentialEvolution(small_cell_space(), OBJECTIVES, seed=0, population_size=4)
    early = optimizer.ask(4)
    assert optimizer.targets == {}
    for candidate in early:
        optimizer.tell(candidate, {"val_accuracy": 1.0})
    trials = optimizer.ask(6)
    # Round-robin over the slots: 0, 1, 2, 3, 0, 1.
    assert [optimizer.targets[t.architecture.hash] for t in trials] == [0, 1, 2, 3, 0, 1]


def test_a_trial_replaces_its_target_only_when_at_least_as_good() -> None:
    optimizer = filled()
    first, second, third = optimizer.ask(3)  # targets: slots 0, 1, 2 (scores 0, 1, 2)
    optimizer.tell(second, {"val_accuracy": 0.5})  # worse than slot 1
    assert scores(optimizer) == [0.0, 1.0, 2.0, 3.0]
    optimizer.tell(third, {"val_accuracy": 2.0})  # a tie replaces
    assert optimizer.population[2]["hash"] == third.architecture.hash
    optimizer.tell(first, {"val_accuracy": 9.0})
    assert scores(optimizer) == [9.0, 1.0, 2.0, 3.0]
    assert optimizer.population[0]["hash"] == first.architecture.hash
    assert optimizer.targets == {}


@pytest.mark.parametrize("outcome", [Outcome.FAILED, Outcome.PRUNED])
def test_failed_and_pruned_trials_never_replace(outcome: Outcome) -> None:
    optimizer = filled()
    before = json.dumps(optimizer.population)
    for trial in optimizer.ask(4):
        optimizer.tell(trial, {"val_accuracy": 99.0}, outcome)
    assert json.dumps(optimizer.population) == before
    assert optimizer.targets == {}


def test_a_result_without_a_target_competes_with_the_worst_member() -> None:
    optimizer = filled()
    stranger = Candidate(small_cell_space().sample(random.Random(42)))
    optimizer.tell(stranger, {"val_accuracy": 0.5})
    assert scores(optimizer) == [0.5, 1.0, 2.0, 3.0]


def test_best_1_bases_the_mutant_on_the_best_other_member() -> None:
    optimizer = filled(population_size=6)  # member i scored i
    for target in range(6):
        a, b, c = optimizer.parents(target)
        assert a == (5 if target != 5 else 4)
        assert len({a, b, c, target}) == 4


def test_rand_1_draws_three_distinct_others() -> None:
    optimizer = DifferentialEvolution(
        small_cell_space(), OBJECTIVES, seed=0, population_size=6, strategy="rand/1"
    )
    for score, candidate in enumerate(optimizer.ask(6)):
        optimizer.tell(candidate, {"val_accuracy": float(score)})
    drawn = [optimizer.parents(2) for _ in range(200)]
    assert all(len({*slots, 2}) == 4 for slots in drawn)
    assert {slots[0] for slots in drawn} == {0, 1, 3, 4, 5}


@pytest.mark.parametrize("seed", range(5))
def test_crossover_takes_at_least_one_variable_from_the_mutant(seed: int) -> None:
    target = {f"x{i}": "target" for i in range(6)}
    mutant = {f"x{i}": "mutant" for i in range(6)}
    rng = random.Random(seed)
    never = crossover(target, mutant, 0.0, rng)
    assert list(never.values()).count("mutant") == 1
    assert set(crossover(target, mutant, 1.0, rng).values()) == {"mutant"}
    some = [list(crossover(target, mutant, 0.5, rng).values()).count("mutant") for _ in range(200)]
    assert min(some) >= 1 and 2.5 < sum(some) / len(some) < 4.5  # 1 + 5 * 0.5 on average


def test_crossover_leaves_out_what_its_source_lacks() -> None:
    trial = crossover({"x": 1, "y": 2}, {"x": 3}, 1.0, random.Random(0))
    assert trial == {"x": 3}  # y is inactive in the mutant: the space samples it if needed


def test_numeric_mutation_is_a_plus_f_times_b_minus_c_on_the_unit_line() -> None:
    domains: list[tuple[str, Domain]] = [
        ("f", FloatRange(0.0, 1.0)),
        ("i", IntRange(0, 9)),
        ("l", FloatRange(1.0, 1e4, log=True)),
    ]
    a, b, c = (
        {"f": 0.5, "i": 4, "l": 10.0},
        {"f": 0.9, "i": 9, "l": 1e3},
        {"f": 0.1, "i": 1, "l": 1.0},
    )
    mutant = mutate(domains, a, b, c, 0.5, random.Random(0))
    assert mutant["f"] == pytest.approx(0.9)
    assert mutant["i"] == 8  # 4 + 0.5 * 8 steps
    assert mutant["l"] == pytest.approx(10.0 * math.sqrt(1e3))  # half the log distance
    far = mutate(domains, a, c, b, 2.0, random.Random(0))
    assert far == {"f": 0.0, "i": 0, "l": 1.0}  # 2 * (c - b) goes below the range: clipped


def test_choice_mutation_keeps_a_where_b_and_c_agree() -> None:
    domains: list[tuple[str, Domain]] = [
        ("op", Choice(("p", "q", "r"))),
        ("same", Choice(("p", "q", "r"))),
    ]
    a, b, c = {"op": "p", "same": "p"}, {"op": "q", "same": "r"}, {"op": "r", "same": "r"}
    drawn = [mutate(domains, a, b, c, 0.5, random.Random(s)) for s in range(200)]
    assert all(m["same"] == "p" for m in drawn)
    changed = sum(m["op"] != "p" for m in drawn)
    assert 70 < changed < 130  # with probability F
    assert {m["op"] for m in drawn} == {"p", "q", "r"}
    assert mutate(domains, {"same": "q"}, b, c, 0.5, random.Random(0)) == {"same": "q"}


@pytest.mark.parametrize("space_name", ["rich", "mlp"])
def test_numeric_and_optional_variables(space_name: str) -> None:
    space = rich_space() if space_name == "rich" else mlp_space()
    optimizer = make_optimizer(
        "differential_evolution", space, objectives=[OBJECTIVES[0]], seed=3, population_size=6
    )
    assert isinstance(optimizer, DifferentialEvolution)
    asked: list[Candidate] = []
    for _ in range(15):
        batch = optimizer.ask(4)
        asked += batch
        for candidate in batch:
            config = candidate.architecture.config
            numeric = sum(v for v in config.values() if isinstance(v, int | float))
            optimizer.tell(candidate, {"val_accuracy": float(numeric)})
    assert len(asked) == 60 and len({c.key for c in asked}) == 60
    assert all(space.contains(c.architecture) for c in asked)
    assert len(optimizer.targets) == 0 and len(optimizer.population) == 6


def test_selection_improves_the_population_on_a_simple_objective() -> None:
    """Score: how many edges hold 'nor_conv_3x3'. Greedy selection never lowers a slot, and
    the trials it makes lift the population's mean well above its random start."""
    optimizer = DifferentialEvolution(small_cell_space(), OBJECTIVES, seed=1, population_size=8)
    means = []
    for _ in range(30):
        for candidate in optimizer.ask(2):
            convs = list(candidate.architecture.config.values()).count("nor_conv_3x3")
            optimizer.tell(candidate, {"val_accuracy": float(convs)})
        if len(optimizer.population) == 8:
            means.append(sum(scores(optimizer)) / 8)
    assert means == sorted(means)
    assert means[-1] >= means[0] + 1.5


@pytest.mark.parametrize(
    "params",
    [
        {"population_size": 3},
        {"population_size": 10**7},
        {"population_size": 5.0},
        {"mutation_factor": 0},
        {"mutation_factor": 2.5},
        {"mutation_factor": float("nan")},
        {"mutation_factor": "half"},
        {"crossover_rate": 1.5},
        {"crossover_rate": -0.1},
        {"crossover_rate": True},
        {"strategy": "current-to-best/1"},
        {"strategy": None},
    ],
)
def test_bad_parameters_raise(params: dict[str, Any]) -> None:
    field = next(iter(params))
    with pytest.raises(OptimizerError, match=rf"optimizer\.params: {field}"):
        make_optimizer("differential_evolution", small_cell_space(), **params)
