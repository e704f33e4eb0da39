"""SearchBase state: flat in size where the algorithm allows, and still reading older states."""

from __future__ import annotations

import json
import random
from collections.abc import Collection

import pytest

from morphml.optimizers import OPTIMIZERS, Objective, Outcome, RandomSearch
from morphml.optimizers._search import SearchBase
from tests.morphml.optimizers.test_contract import continue_run, make, run, served
from tests.morphml.spaces import rich_space, small_cell_space

OBJECTIVES = [Objective("val_accuracy")]
# Those that persist neither `seen` nor `history`: their state must not grow with the run.
BOUNDED = sorted(
    name
    for name, factory in OPTIMIZERS.items()
    if not getattr(factory, "persist_seen", True) and not getattr(factory, "persist_history", True)
)
# What each persists instead of the history, which states saved before this change lack.
DERIVED_FROM_HISTORY = {
    "regularized_evolution": "population",
    "simulated_annealing": "moments",
    "nsga2": "front",
}


def test_random_search_and_every_optimizer_without_history_are_bounded() -> None:
    assert {"random", "regularized_evolution", "genetic", "local_search"} <= set(BOUNDED)


def test_random_search_state_is_the_rng_and_what_is_in_flight() -> None:
    optimizer = make("random", small_cell_space())
    assert isinstance(optimizer, RandomSearch)
    for candidate in optimizer.ask(20):
        optimizer.tell(candidate, None, Outcome.FAILED)
    in_flight = optimizer.ask(2)
    state = optimizer.state_dict()
    assert set(state) == {"rng", "pending", "told"}
    assert set(state["pending"]) == {c.architecture.hash for c in in_flight}


def test_random_search_asks_known_once_per_round_of_draws() -> None:
    questions: list[set[str]] = []

    def known(hashes: Collection[str]) -> set[str]:
        questions.append(set(hashes))
        return set()

    optimizer = RandomSearch(rich_space(), OBJECTIVES, seed=0)
    optimizer.known = known
    assert len(optimizer.ask(32)) == 32
    assert [len(question) for question in questions] == [32]


def test_random_search_draws_as_one_draw_per_candidate_would() -> None:
    # SearchBase alone has no proposals: it draws each candidate on its own, asking `known`
    # once per draw. Random search batches the questions and must find the same candidates,
    # here on a space whose draws often repeat.
    earlier = RandomSearch(small_cell_space(), OBJECTIVES, seed=1).ask(300)
    told_before = {c.architecture.hash for c in earlier}
    answers = []
    for optimizer in (
        RandomSearch(small_cell_space(), OBJECTIVES, seed=3),
        SearchBase(small_cell_space(), OBJECTIVES, seed=3),
    ):
        optimizer.known = told_before.intersection
        answers.append([c.key for n in (1, 7, 30, 100) for c in optimizer.ask(n)])
    assert answers[0] == answers[1] and len(set(answers[0])) == 138


@pytest.mark.parametrize("name", BOUNDED)
def test_state_size_does_not_grow_with_the_results_told(name: str) -> None:
    # A large space, so that 1,000 proposals stay cheap to find.
    optimizer = make(name, rich_space(), seed=1)
    run(optimizer, steps=10, batch=5, rng=random.Random(1))
    after_10 = len(json.dumps(optimizer.state_dict()))
    run(optimizer, steps=990, batch=5, rng=random.Random(2))
    after_1000 = len(json.dumps(optimizer.state_dict()))
    assert after_1000 <= after_10 * 1.15, (after_10, after_1000)


@pytest.mark.parametrize("name", sorted(DERIVED_FROM_HISTORY.keys() | set(BOUNDED)))
def test_states_saved_with_seen_and_history_resume_exactly(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A state as the code before bounded states wrote it: every hash, every result, no
    # summary of the history.
    factory = OPTIMIZERS[name]
    monkeypatch.setattr(factory, "persist_seen", True)
    monkeypatch.setattr(factory, "persist_history", True)
    original = served(name, small_cell_space(), seed=5)
    run(original, steps=30, batch=3, rng=random.Random(4))
    in_flight = original.ask(3)
    state = json.loads(json.dumps(original.state_dict()))
    assert {"seen", "history"} <= set(state)
    state.pop(DERIVED_FROM_HISTORY.get(name, ""), None)
    monkeypatch.undo()
    restored = served(name, small_cell_space(), seed=99, asked=set(original.asked))
    restored.load_state_dict(state)
    assert "history" not in restored.state_dict()
    assert continue_run(original, in_flight) == continue_run(restored, in_flight)
