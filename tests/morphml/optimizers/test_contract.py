"""The contract every registered optimizer passes: valid, unique proposals; asynchronous tells in
any order, failures included; JSON state that resumes exactly; no hang on an exhausted space.

The optimizers are driven as the server drives them (`Served`): its task table holds every
candidate asked, and it answers the optimizer's `known` lookups from it.
"""

from __future__ import annotations

import json
import random
import zlib
from collections.abc import Collection
from typing import Any

import pytest

from morphml import FloatRange, IntRange, Layer, SearchSpace
from morphml.optimizers import (
    OPTIMIZERS,
    AcceptsKnown,
    Candidate,
    Optimizer,
    OptimizerError,
    Outcome,
    make_optimizer,
)
from morphml.space.base import Space
from tests.morphml.spaces import cnn_space, small_cell_space

OBJECTIVES = [
    {"metric": "val_accuracy", "direction": "maximize"},
    {"metric": "params", "direction": "minimize"},
]
# Small settings so that every algorithm leaves its random start within a short test run.
SMALL = {
    "regularized_evolution": {"population_size": 5, "sample_size": 2},
    "genetic": {"population_size": 5, "elitism": 1},
    "differential_evolution": {"population_size": 5},
    "tpe": {"n_startup": 4, "max_observations": 10, "n_candidates": 8},
    "surrogate": {"initial_samples": 4, "random_pool": 20, "mutations": 5},
    "default": {"initial_samples": 4, "random_pool": 20, "mutations": 5},
    "nsga2": {"population_size": 6},
    "hyperband": {"min_budget": 1, "max_budget": 9},
}


def metrics_of(candidate: Candidate) -> dict[str, float]:
    """A deterministic made-up result: any fixed function of the architecture will do."""
    digest = zlib.crc32(candidate.architecture.hash.encode())
    budget = candidate.budget or 1.0
    return {
        "val_accuracy": (digest % 1000) / 10 + budget,
        "params": float(candidate.architecture.num_params),
    }


def make(name: str, space: Space, seed: int = 0) -> Optimizer:
    return make_optimizer(name, space, objectives=OBJECTIVES, seed=seed, **SMALL.get(name, {}))


class Served:
    """An optimizer as the server drives it: `asked` (the task table, shared with whoever holds
    it) gains every candidate asked, and answers the optimizer's `known` lookups."""

    def __init__(self, optimizer: Optimizer, asked: set[str]) -> None:
        self.optimizer, self.asked = optimizer, asked
        if isinstance(optimizer, AcceptsKnown):
            optimizer.known = self.known

    def known(self, hashes: Collection[str]) -> set[str]:
        return self.asked.intersection(hashes)

    def ask(self, n: int = 1) -> list[Candidate]:
        candidates = self.optimizer.ask(n)
        self.asked.update(c.architecture.hash for c in candidates)
        return candidates

    def tell(
        self, candidate: Candidate, metrics: Any, outcome: Outcome = Outcome.COMPLETED
    ) -> None:
        self.optimizer.tell(candidate, metrics, outcome)

    def state_dict(self) -> dict[str, Any]:
        return self.optimizer.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state)


def served(name: str, space: Space, seed: int = 0, asked: set[str] | None = None) -> Served:
    return Served(make(name, space, seed), set() if asked is None else asked)


def persists_seen(name: str) -> bool:
    return bool(getattr(OPTIMIZERS[name], "persist_seen", True))


def run(optimizer: Optimizer, steps: int, batch: int, rng: random.Random) -> list[Candidate]:
    """Ask `batch` at a time, tell back in a shuffled order; every 7th fails. Returns all asked."""
    asked: list[Candidate] = []
    while len(asked) < steps:
        batch_asked = optimizer.ask(batch)
        if not batch_asked:
            break
        asked += batch_asked
        rng.shuffle(batch_asked)
        for candidate in batch_asked:
            tell(optimizer, candidate, len(asked))
    return asked


def tell(optimizer: Optimizer, candidate: Candidate, step: int) -> None:
    if step % 7 == 0:
        optimizer.tell(candidate, None, Outcome.FAILED)
    elif step % 11 == 0:
        optimizer.tell(candidate, {"val_accuracy": 1.0}, Outcome.PRUNED)
    else:
        optimizer.tell(candidate, metrics_of(candidate))


def one_shot(name: str) -> bool:
    """A one-shot optimizer (`weight_sharing`: a supernet task, then its top-k cells) proposes a
    handful of candidates, not a stream: the tests here assume endless proposals and skip it.
    Its own contract is in test_weight_sharing.py."""
    return bool(getattr(OPTIMIZERS[name], "one_shot", False))


PROPOSING = sorted(name for name in OPTIMIZERS if not one_shot(name))


@pytest.fixture(params=PROPOSING)
def name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


class TestOptimizerContract:
    def test_single_point_ranges_and_a_small_log_range_are_exhausted_cleanly(
        self, name: str
    ) -> None:
        """Ranges of one value and a log range of three ints: every optimizer finds the three
        architectures there are, each a member, and then asks for nothing it holds."""
        space = SearchSpace("points").add_layers(
            Layer.input(shape=(4,)),
            Layer.dense(units=IntRange(3, 3)),
            Layer.dropout(rate=FloatRange(0.2, 0.2)),
            Layer.dense(units=IntRange(2, 4, log=True)),
            Layer.output(units=2),
        )
        optimizer = make(name, space)
        asked: list[Candidate] = []
        for _ in range(6):
            batch = optimizer.ask(2)
            asked += batch
            for candidate in batch:
                optimizer.tell(candidate, {"val_accuracy": float(len(asked)), "params": 1.0})
        assert {c.architecture.config["3.units"] for c in asked} == {2, 3, 4}
        assert len({c.key for c in asked}) == len(asked)  # ASHA may promote one: a new budget
        assert all(space.contains(c.architecture) for c in asked)

    def test_asks_valid_distinct_members_of_the_space(self, name: str) -> None:
        space = small_cell_space()
        asked = run(served(name, space), steps=40, batch=4, rng=random.Random(1))
        assert len(asked) >= 40
        assert all(space.contains(c.architecture) for c in asked)
        assert len({c.key for c in asked}) == len(asked)

    def test_ask_while_others_are_in_flight(self, name: str) -> None:
        optimizer, rng = served(name, small_cell_space()), random.Random(2)
        in_flight = optimizer.ask(6)
        for step in range(30):
            rng.shuffle(in_flight)
            tell(optimizer, in_flight.pop(), step)
            in_flight += optimizer.ask(1)
        keys = [c.key for c in in_flight]
        assert len(keys) == len(set(keys)) == 6

    def test_candidates_survive_a_json_round_trip(self, name: str) -> None:
        optimizer = served(name, small_cell_space())
        for candidate in run(optimizer, steps=12, batch=3, rng=random.Random(3))[-3:]:
            again = Candidate.from_dict(json.loads(json.dumps(candidate.to_dict())))
            assert again.key == candidate.key and again.meta == candidate.meta
        for candidate in optimizer.ask(2):
            optimizer.tell(
                Candidate.from_dict(json.loads(json.dumps(candidate.to_dict()))),
                metrics_of(candidate),
            )

    @pytest.mark.parametrize("space_name", ["cell", "cnn"])
    def test_state_dict_resumes_with_identical_proposals(self, name: str, space_name: str) -> None:
        space = small_cell_space() if space_name == "cell" else cnn_space()
        original = served(name, space, seed=5)
        run(original, steps=14, batch=2, rng=random.Random(4))
        in_flight = original.ask(3)
        state = json.loads(json.dumps(original.state_dict()))
        restored = served(name, space, seed=99, asked=set(original.asked))
        restored.load_state_dict(state)
        assert continue_run(original, in_flight) == continue_run(restored, in_flight)

    def test_exhausted_space_returns_fewer_candidates(self, name: str) -> None:
        optimizer = served(name, tiny_space())
        asked = run(optimizer, steps=50, batch=5, rng=random.Random(5))
        assert {c.architecture.hash for c in asked} == tiny_hashes()
        assert len({c.key for c in asked}) == len(asked) < 50
        assert optimizer.ask(5) == []

    def test_reloads_never_repeat_an_architecture(self, name: str) -> None:
        space = small_cell_space()
        asked = [c for batch in reload_cycles(name, space, cycles=15, batch=4) for c in batch]
        assert len(asked) == 60
        assert all(space.contains(c.architecture) for c in asked)
        assert len({c.key for c in asked}) == len(asked)

    def test_reloads_exhaust_a_tiny_space_exactly(self, name: str) -> None:
        batches = reload_cycles(name, tiny_space(), cycles=10, batch=2)
        asked = [c for batch in batches for c in batch]
        assert {c.architecture.hash for c in asked} == tiny_hashes()
        assert len({c.key for c in asked}) == len(asked)
        assert batches[-3:] == [[], [], []]

    def test_unknown_parameters_raise(self, name: str) -> None:
        with pytest.raises(OptimizerError, match="no parameter 'bogus'"):
            make_optimizer(name, small_cell_space(), bogus=1)


def tiny_space() -> SearchSpace:
    return SearchSpace("tiny").add_layers(
        Layer.input(shape=(4,)), Layer.dense(units=[2, 3, 4]), Layer.output(units=2)
    )


def tiny_hashes() -> set[str]:
    return {tiny_space().build({"1.units": units}).hash for units in (2, 3, 4)}


def reload_cycles(name: str, space: Space, cycles: int, batch: int) -> list[list[Candidate]]:
    """Refill as the server does: each cycle builds a fresh optimizer from the saved JSON state,
    tells it how the previous batch ended, asks a batch and saves the state. Returns the batches."""
    asked: set[str] = set()
    state: dict[str, Any] | None = None
    batches: list[list[Candidate]] = [[]]
    for cycle in range(cycles):
        optimizer = served(name, space, seed=cycle, asked=asked)  # the state carries the seed
        if state is not None:
            optimizer.load_state_dict(state)
        for step, candidate in enumerate(batches[-1]):
            tell(optimizer, candidate, cycle * batch + step + 1)
        batches.append(optimizer.ask(batch))
        state = json.loads(json.dumps(optimizer.state_dict()))
    return batches[1:]


def continue_run(optimizer: Optimizer, in_flight: list[Candidate]) -> list[Any]:
    for step, candidate in enumerate(in_flight):
        tell(optimizer, candidate, step + 1)
    asked = run(optimizer, steps=12, batch=3, rng=random.Random(6))
    return [(c.key, c.meta) for c in asked]


@pytest.mark.parametrize("name", [n for n in PROPOSING if persists_seen(n)])
def test_state_with_seen_resumes_without_known(name: str) -> None:
    """Optimizers that persist `seen` resume exactly with no `known` lookup at all (the others
    leave it to `known`, as the class above checks)."""
    original = make(name, cnn_space(), seed=5)
    run(original, steps=14, batch=2, rng=random.Random(4))
    in_flight = original.ask(3)
    restored = make(name, cnn_space(), seed=99)
    restored.load_state_dict(json.loads(json.dumps(original.state_dict())))
    assert continue_run(original, in_flight) == continue_run(restored, in_flight)


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("regularized_evolution", {"population_size": 1}),
        ("regularized_evolution", {"population_size": 5, "sample_size": 6}),
        ("genetic", {"crossover_rate": 1.5}),
        ("genetic", {"population_size": 4, "elitism": 4}),
        ("simulated_annealing", {"cooling": 0}),
        ("surrogate", {"initial_samples": 0}),
        ("nsga2", {"population_size": "many"}),
        ("hyperband", {"min_budget": 10, "max_budget": 1}),
        ("hyperband", {"eta": 1}),
    ],
)
def test_bad_parameter_values_raise(name: str, params: dict[str, Any]) -> None:
    with pytest.raises(OptimizerError, match=r"optimizer\.params"):
        make_optimizer(name, small_cell_space(), objectives=OBJECTIVES, **params)


def test_unknown_optimizer_and_bad_objectives_raise() -> None:
    with pytest.raises(OptimizerError, match="unknown optimizer"):
        make_optimizer("smac", small_cell_space())
    with pytest.raises(OptimizerError, match="direction"):
        make_optimizer(
            "random", small_cell_space(), objectives=[{"metric": "x", "direction": "up"}]
        )
    with pytest.raises(OptimizerError, match="at least one"):
        make_optimizer("random", small_cell_space(), objectives=[])


def test_failed_and_pruned_results_never_become_parents() -> None:
    optimizer = make_optimizer("local_search", small_cell_space(), seed=0)
    for candidate in optimizer.ask(3):
        optimizer.tell(candidate, {"val_accuracy": 99.0}, Outcome.PRUNED)
    assert optimizer.state_dict()["current"] is None
