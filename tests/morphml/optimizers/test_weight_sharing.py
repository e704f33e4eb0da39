"""The one-shot `weight_sharing` optimizer's contract (a supernet task, then its derived cells
trained from scratch) and the encoding of derived cells in a task's metrics.

It proposes a handful of candidates, not a stream, so the shared contract in test_contract.py
skips it (`one_shot`); this file checks the same promises for its one path: JSON state that
resumes exactly at every step, failures handled, distinct candidates, never a known hash.
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass
from typing import Any

import pytest

from morphml import CellSpace, IntRange, Layer, SearchSpace
from morphml.optimizers import Candidate, OptimizerError, Outcome, WeightSharing, make_optimizer
from morphml.optimizers.derived import derived_configs, derived_metrics, max_top_k
from tests.morphml.optimizers.test_contract import Served
from tests.morphml.spaces import small_cell_space

OBJECTIVES = [{"metric": "val_accuracy", "direction": "maximize"}]


@dataclass(frozen=True)
class Cell:
    """A derived cell as `morphml.weight_sharing.search` returns it."""

    config: dict[str, Any]
    score: float


def make(space: CellSpace | None = None, seed: int = 0, **params: Any) -> WeightSharing:
    optimizer = make_optimizer(
        "weight_sharing", space or small_cell_space(), objectives=OBJECTIVES, seed=seed, **params
    )
    assert isinstance(optimizer, WeightSharing)
    return optimizer


def cells(space: CellSpace, count: int, seed: int = 1) -> list[Cell]:
    """`count` cells of distinct networks, best first."""
    rng, found = random.Random(seed), dict[str, dict[str, Any]]()
    while len(found) < count:
        architecture = space.sample(rng)
        found.setdefault(architecture.hash, architecture.config)
    return [Cell(config, 0.9 - rank / 10) for rank, config in enumerate(found.values())]


def supernet_result(space: CellSpace, derived: list[Cell]) -> dict[str, float]:
    return {"supernet_val_accuracy": derived[0].score, **derived_metrics(space, derived)}


def hashes(space: CellSpace, derived: list[Cell]) -> list[str]:
    return [space.build(cell.config).hash for cell in derived]


def round_trip(optimizer: WeightSharing, seed: int = 99) -> WeightSharing:
    restored = make(optimizer.space, seed=seed, **params_of(optimizer))
    restored.load_state_dict(json.loads(json.dumps(optimizer.state_dict())))
    return restored


def params_of(optimizer: WeightSharing) -> dict[str, Any]:
    return {"top_k": optimizer.top_k, "final_budget": optimizer.final_budget}


def proposals(candidates: list[Candidate]) -> list[tuple[str, Any, Any]]:
    return [(c.key, c.budget, c.meta) for c in candidates]


class TestEncoding:
    def test_derived_cells_survive_metrics(self) -> None:
        space = small_cell_space()
        derived = cells(space, 3)
        metrics = supernet_result(space, derived)
        assert metrics["derived.1.score"] == derived[0].score
        assert metrics["derived.3.2<-1"] == space.ops.index(derived[2].config["2<-1"])
        decoded = derived_configs(space, json.loads(json.dumps(metrics)))
        assert [(d.config, d.score) for d in decoded] == [(c.config, c.score) for c in derived]

    def test_how_many_fit_in_one_result(self) -> None:
        assert max_top_k(CellSpace(num_nodes=3)) == 14  # 3 edges: 4 metrics a cell, 56 free
        assert max_top_k(CellSpace()) == 8  # NAS-Bench-201: 6 edges
        assert max_top_k(CellSpace(num_nodes=12)) == 0  # 66 edges
        space = CellSpace()
        assert len(derived_metrics(space, cells(space, 8))) <= 64 - 8
        with pytest.raises(ValueError, match="top_k: 9 derived cells"):
            derived_metrics(space, cells(space, 9))

    @pytest.mark.parametrize(
        ("change", "message"),
        [
            ({"derived.1.2<-0": 5.0}, r"derived\.1\.2<-0: 5\.0 is not an index in \[0, 4\]"),
            ({"derived.2.1<-0": -1.0}, r"derived\.2\.1<-0: -1\.0 is not an index"),
            ({"derived.1.1<-0": 1.5}, r"derived\.1\.1<-0: 1\.5 is not an index"),
            ({"derived.1.1<-0": math.nan}, r"derived\.1\.1<-0: expected a finite number"),
            ({"derived.1.score": math.inf}, r"derived\.1\.score: expected a finite number"),
            ({"derived.2.2<-1": None}, r"derived\.2\.2<-1: expected a finite number"),
            ({"derived.2.2<-1": True}, r"derived\.2\.2<-1: expected a finite number"),
        ],
    )
    def test_bad_metrics_are_refused_by_name(self, change: dict[str, Any], message: str) -> None:
        space = small_cell_space()
        metrics: dict[str, Any] = {**supernet_result(space, cells(space, 2)), **change}
        with pytest.raises(ValueError, match=message):
            derived_configs(space, metrics)

    def test_a_missing_variable_is_refused_and_no_score_means_no_cell(self) -> None:
        space = small_cell_space()
        metrics = supernet_result(space, cells(space, 2))
        assert derived_configs(space, {"supernet_val_accuracy": 0.5}) == []
        del metrics["derived.2.3<-2"]
        with pytest.raises(ValueError, match=r"derived\.2\.3<-2: missing"):
            derived_configs(space, metrics)

    def test_configs_outside_the_space_and_ranges_are_refused(self) -> None:
        space = small_cell_space()
        with pytest.raises(ValueError, match="1<-0 = 'conv_7x7' is not in the space"):
            derived_metrics(space, [Cell({**cells(space, 1)[0].config, "1<-0": "conv_7x7"}, 0.5)])
        ranged = SearchSpace("r").add_layers(
            Layer.input(shape=(4,)), Layer.dense(units=IntRange(2, 9)), Layer.output(units=2)
        )
        with pytest.raises(ValueError, match="IntRange cannot be encoded"):
            derived_configs(ranged, {})


class TestWeightSharingContract:
    def test_one_supernet_task_then_nothing_until_it_is_told(self) -> None:
        space = small_cell_space()
        optimizer = make(space, top_k=2, search={"epochs": 3})
        (supernet,) = optimizer.ask(5)
        assert space.contains(supernet.architecture) and supernet.budget == 0.0
        assert supernet.meta == {
            "phase": "supernet",
            "space": space.to_dict(),
            "search": {"epochs": 3, "method": "darts", "top_k": 2},
        }
        assert optimizer.ask(5) == [] and optimizer.ask(1) == []

    def test_the_derived_cells_are_the_final_candidates_best_first(self) -> None:
        space = small_cell_space()
        optimizer = Served(make(space, top_k=3, final_budget=4), set())
        (supernet,) = optimizer.ask(1)
        derived = cells(space, 3)
        optimizer.tell(supernet, supernet_result(space, derived))
        finals = optimizer.ask(2) + optimizer.ask(5)
        assert [c.architecture.hash for c in finals] == hashes(space, derived)
        assert [c.architecture.config for c in finals] == [c.config for c in derived]
        assert [c.budget for c in finals] == [4.0, 4.0, 4.0]
        assert [c.meta for c in finals] == [
            {"phase": "final", "rank": rank, "supernet_score": cell.score}
            for rank, cell in enumerate(derived, start=1)
        ]
        assert len({c.key for c in [supernet, *finals]}) == 4
        for final in finals:
            optimizer.tell(final, {"val_accuracy": 0.5})
        assert optimizer.ask(5) == []

    def test_a_final_budget_of_none_leaves_the_epochs_to_the_evaluator(self) -> None:
        space = small_cell_space()
        optimizer = make(space)
        (supernet,) = optimizer.ask(1)
        optimizer.tell(supernet, supernet_result(space, cells(space, 1)))
        (final,) = optimizer.ask(3)
        assert final.budget is None and final.key.endswith("@None")

    def test_never_asks_an_architecture_the_experiment_holds(self) -> None:
        space = small_cell_space()
        derived = cells(space, 3)
        held = {hashes(space, derived)[1]}
        optimizer = Served(make(space, top_k=3), asked=set(held))
        (supernet,) = optimizer.ask(1)
        optimizer.tell(supernet, supernet_result(space, derived))
        finals = optimizer.ask(5)
        assert [c.architecture.hash for c in finals] == [hashes(space, derived)[i] for i in (0, 2)]
        assert [c.meta["rank"] for c in finals] == [1, 3]

    def test_duplicate_and_surplus_cells_are_dropped(self) -> None:
        space = small_cell_space()
        derived = cells(space, 3)
        optimizer = make(space, top_k=2)
        (supernet,) = optimizer.ask(1)
        metrics = supernet_result(space, [derived[0], derived[0], derived[1], derived[2]])
        optimizer.tell(supernet, metrics)
        assert [c.architecture.hash for c in optimizer.ask(5)] == hashes(space, derived[:2])

    @pytest.mark.parametrize("outcome", [Outcome.FAILED, Outcome.PRUNED])
    def test_a_failed_supernet_is_replaced_once_then_the_search_ends(
        self, outcome: Outcome
    ) -> None:
        optimizer = make(top_k=2)
        (first,) = optimizer.ask(1)
        optimizer.tell(first, None if outcome == Outcome.FAILED else {"epoch": 1.0}, outcome)
        (second,) = optimizer.ask(3)
        assert second.meta == first.meta and second.budget == 0.0
        assert second.architecture.hash != first.architecture.hash  # a new key
        assert optimizer.ask(1) == []
        optimizer.tell(second, None, Outcome.FAILED)
        assert optimizer.ask(3) == [] and round_trip(optimizer).ask(3) == []

    def test_no_retry_when_retries_is_zero_and_more_when_allowed(self) -> None:
        optimizer = make(retries=0)
        optimizer.tell(optimizer.ask(1)[0], None, Outcome.FAILED)
        assert optimizer.ask(1) == []
        optimizer = make(retries=3)
        placeholders = set()
        for _ in range(4):
            (supernet,) = optimizer.ask(1)
            placeholders.add(supernet.architecture.hash)
            optimizer.tell(supernet, None, Outcome.FAILED)
        assert len(placeholders) == 4 and optimizer.ask(1) == []

    def test_a_space_with_one_network_cannot_retry_and_ends(self) -> None:
        optimizer = make(CellSpace(num_nodes=2, ops=["skip_connect"], cells_per_stage=1))
        optimizer.tell(optimizer.ask(1)[0], None, Outcome.FAILED)
        assert optimizer.ask(1) == []

    def test_a_supernet_result_without_derived_cells_fails_the_experiment_clearly(self) -> None:
        optimizer = make()
        (supernet,) = optimizer.ask(1)
        with pytest.raises(OptimizerError, match="needs the `train` evaluator"):
            optimizer.tell(supernet, {"val_accuracy": 0.9})
        optimizer = make()
        (supernet,) = optimizer.ask(1)
        with pytest.raises(OptimizerError, match=r"supernet task's result: derived\.1\.1<-0"):
            optimizer.tell(supernet, {"derived.1.score": 0.5, "derived.1.1<-0": 99.0})

    @pytest.mark.parametrize("stop", range(7))
    def test_state_resumes_exactly_after_any_step(self, stop: int) -> None:
        """Each step is one thing the server does (ask, tell); after `stop` steps the state is
        saved, and a fresh optimizer given it goes on exactly as the original."""
        space = small_cell_space()
        derived = cells(space, 3)
        original = make(space, seed=3, top_k=3, final_budget=2)
        in_flight: list[Candidate] = []

        def step(optimizer: WeightSharing, index: int) -> list[Any]:
            if index in (0, 2, 4, 5, 6):  # asks, whatever is due
                asked = optimizer.ask(1 if index == 4 else 5)
                in_flight.extend(asked)
                return proposals(asked)
            candidate = in_flight.pop(0)
            if index == 1:  # the first supernet fails: another is asked
                optimizer.tell(candidate, None, Outcome.FAILED)
            else:
                optimizer.tell(candidate, supernet_result(space, derived))
            return []

        for index in range(stop):
            step(original, index)
        restored = round_trip(original)
        saved_flight = list(in_flight)
        rest = [step(original, index) for index in range(stop, 7)]
        in_flight[:] = saved_flight
        assert [step(restored, index) for index in range(stop, 7)] == rest
        assert restored.state_dict() == original.state_dict()

    def test_state_is_small_plain_json(self) -> None:
        space = CellSpace()
        optimizer = make(space, top_k=8)
        (supernet,) = optimizer.ask(1)
        optimizer.tell(supernet, supernet_result(space, cells(space, 8)))
        optimizer.ask(3)
        state = optimizer.state_dict()
        assert json.loads(json.dumps(state, allow_nan=False)) == state
        assert len(json.dumps(state)) < 300 + 200 * 8  # a few counters and 8 cells
        assert state["phase"] == "final" and state["finals_asked"] == 3

    def test_candidates_survive_a_json_round_trip(self) -> None:
        space = small_cell_space()
        optimizer = make(space, top_k=2)
        (supernet,) = optimizer.ask(1)
        wire = Candidate.from_dict(json.loads(json.dumps(supernet.to_dict())))
        optimizer.tell(wire, supernet_result(space, cells(space, 2)))
        for final in optimizer.ask(2):
            again = Candidate.from_dict(json.loads(json.dumps(final.to_dict())))
            assert again.key == final.key and again.meta == final.meta


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"method": "enas"}, r"method must be one of \['darts', 'spos'\]"),
        ({"top_k": 0}, r"top_k must be an int in \[1, 8\], got 0"),
        ({"top_k": 9}, r"top_k must be an int in \[1, 8\], got 9 \(the supernet task's result"),
        ({"top_k": True}, "top_k must be an int"),
        ({"top_k": "2"}, "top_k must be an int"),
        ({"final_budget": 0}, "final_budget must be a number > 0"),
        ({"final_budget": -1.0}, "final_budget must be a number > 0"),
        ({"final_budget": math.nan}, "final_budget must be a number > 0"),
        ({"final_budget": math.inf}, "final_budget must be a number > 0"),
        ({"final_budget": "2"}, "final_budget must be a number > 0"),
        ({"search": "fast"}, "search must be an object"),
        ({"search": {"method": "spos"}}, r"search\.method: give it as optimizer\.params\.method"),
        ({"search": {"top_k": 2}}, r"search\.top_k: give it as optimizer\.params\.top_k"),
        ({"search": {"lr": math.nan}}, "search must be plain JSON"),
        ({"search": {"lr": object()}}, "search must be plain JSON"),
        ({"retries": -1}, r"retries must be an int in \[0, 10\]"),
        ({"retries": 11}, r"retries must be an int in \[0, 10\]"),
    ],
)
def test_bad_parameters_are_refused_by_name(params: dict[str, Any], message: str) -> None:
    with pytest.raises(OptimizerError, match=r"optimizer\.params: " + message):
        make(CellSpace(), **params)


def test_only_a_cell_space_and_only_one_that_fits_in_a_result() -> None:
    sequential = SearchSpace("s").add_layers(
        Layer.input(shape=(4,)), Layer.dense(units=[2, 3]), Layer.output(units=2)
    )
    with pytest.raises(OptimizerError, match="search_space: weight_sharing searches a cell space"):
        make_optimizer("weight_sharing", sequential)
    concat = CellSpace(num_nodes=4, cells_per_stage=1, node_aggregation="concat")
    with pytest.raises(OptimizerError, match=r"search_space\.node_aggregation: .* not 'concat'"):
        make_optimizer("weight_sharing", concat)
    two_inputs = CellSpace(num_nodes=4, cells_per_stage=1, cell_inputs=2)
    picking = CellSpace(num_nodes=4, cells_per_stage=1, inputs_per_node=1)
    for space in (two_inputs, picking):  # their variables are choices too
        optimizer = make_optimizer("weight_sharing", space, top_k=2)
        (supernet,) = optimizer.ask(1)
        derived = cells(space, 2)
        optimizer.tell(supernet, supernet_result(space, derived))
        assert [c.architecture.hash for c in optimizer.ask(2)] == hashes(space, derived)
    with pytest.raises(OptimizerError, match="does not fit in one result's 64 metrics"):
        make_optimizer("weight_sharing", CellSpace(num_nodes=12, cells_per_stage=1))
    with pytest.raises(OptimizerError, match="no parameter 'bogus'"):
        make_optimizer("weight_sharing", CellSpace(), bogus=1)
