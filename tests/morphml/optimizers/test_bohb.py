"""BOHB-style sampling in ASHA and Hyperband: new architectures from the GP on the best rung."""

from __future__ import annotations

import json
import statistics
from typing import Any

import pytest

from morphml.optimizers import Candidate, Objective, OptimizerError, make_optimizer
from morphml.optimizers._rung_model import RungModel
from morphml.optimizers.hyperband import ASHA
from tests.morphml.spaces import rich_space, small_cell_space


def quality(candidate: Candidate) -> float:
    """A learnable made-up accuracy: 3x3 convolutions help, more epochs help a little."""
    config = candidate.architecture.config
    convs = sum(1 for op in config.values() if op == "nor_conv_3x3")
    return float(convs) + 0.01 * (candidate.budget or 0)


def drive(name: str, steps: int, **params: Any) -> list[Candidate]:
    optimizer = make_optimizer(name, small_cell_space(), seed=3, **params)
    asked: list[Candidate] = []
    while len(asked) < steps:
        batch = optimizer.ask(1)
        asked += batch
        for candidate in batch:
            optimizer.tell(candidate, {"val_accuracy": quality(candidate)})
    return asked


def new_at_bottom(asked: list[Candidate]) -> list[Candidate]:
    return [c for c in asked if c.meta["rung"] == 0 and "promoted_from" not in c.meta]


def test_surrogate_sampler_proposes_better_new_architectures_than_random() -> None:
    params = {"min_budget": 1, "max_budget": 9, "eta": 3, "min_points": 5}
    random_new = new_at_bottom(drive("asha", 150, **params))[40:]
    modelled_new = new_at_bottom(drive("asha", 150, sampler="surrogate", **params))[40:]
    assert len(random_new) > 20 and len(modelled_new) > 20
    mean_random = statistics.fmean(quality(c) for c in random_new)
    mean_modelled = statistics.fmean(quality(c) for c in modelled_new)
    assert mean_modelled > mean_random + 1.0  # random averages 6/5 convs of the 6 edges


def test_bohb_is_hyperband_with_the_surrogate_sampler() -> None:
    params = {"min_budget": 1, "max_budget": 9, "min_points": 4}
    bohb = [c.key for c in drive("bohb", 60, **params)]
    hyperband = [c.key for c in drive("hyperband", 60, sampler="surrogate", **params)]
    assert bohb == hyperband
    assert bohb != [c.key for c in drive("hyperband", 60, min_budget=1, max_budget=9)]


def test_random_sampler_state_is_unchanged_and_the_surrogate_saves_its_model() -> None:
    plain = make_optimizer("asha", small_cell_space(), seed=0)
    assert "model" not in plain.state_dict()
    modelled = make_optimizer("asha", small_cell_space(), seed=0, sampler="surrogate")
    assert modelled.state_dict()["model"] == [-1, 0, 1.5, 0.1]


@pytest.mark.parametrize("space_factory", [small_cell_space, rich_space])
def test_a_reloaded_surrogate_sampler_proposes_the_same(space_factory: Any) -> None:
    def make() -> ASHA:
        objectives = [Objective("val_accuracy")]
        return ASHA(
            space_factory(), objectives, seed=1, max_budget=9, sampler="surrogate", min_points=3
        )

    def step(optimizer: ASHA, count: int) -> list[str]:
        keys = []
        for _ in range(count):
            for candidate in optimizer.ask(1):
                keys.append(candidate.key)
                digest = sum(map(ord, candidate.architecture.hash)) % 97
                optimizer.tell(candidate, {"val_accuracy": float(digest)})
        return keys

    original = make()
    step(original, 25)
    assert original.model is not None and original.model.rung >= 0  # the model is in use
    restored = make()
    restored.load_state_dict(json.loads(json.dumps(original.state_dict())))
    assert step(original, 15) == step(restored, 15)


def test_the_model_uses_the_highest_rung_with_enough_results() -> None:
    model = RungModel(small_cell_space(), min_points=2)
    entry = {"config": {}, "score": 1.0}
    rungs: list[dict[str, Any]] = [
        {"a": entry, "b": entry, "c": entry},
        {"a": entry, "b": entry},
        {"a": entry, "b": {"config": {}, "score": None}},
    ]
    assert model._modelled_rung(rungs) == 1
    assert model._modelled_rung([{"a": entry}, {}]) is None


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"sampler": "kde"}, "sampler"),
        ({"sampler": None}, "sampler"),
        ({"min_points": 1}, "min_points"),
        ({"min_points": "10"}, "min_points"),
        ({"min_points": True}, "min_points"),
    ],
)
@pytest.mark.parametrize("name", ["asha", "hyperband", "bohb"])
def test_bad_sampler_parameters_raise(name: str, params: dict[str, Any], field: str) -> None:
    if name == "bohb" and field == "sampler":
        with pytest.raises(OptimizerError, match="no parameter 'sampler'"):
            make_optimizer(name, small_cell_space(), **params)
        return
    with pytest.raises(OptimizerError, match=field):
        make_optimizer(name, small_cell_space(), **params)


def test_a_huge_min_points_only_keeps_the_search_random() -> None:
    huge = drive("asha", 30, sampler="surrogate", min_points=10**9, max_budget=9)
    plain = drive("asha", 30, max_budget=9)
    assert [c.key for c in huge] == [c.key for c in plain]
