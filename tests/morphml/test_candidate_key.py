"""The candidate key: one spelling, `<arch_hash>@<budget>`, stored by the server with each task."""

from __future__ import annotations

from morphml import Layer, SearchSpace
from morphml.optimizers import Candidate
from morphml.optimizers.base import candidate_key


def test_the_key_is_hash_at_budget() -> None:
    assert candidate_key("3f2a", None) == "3f2a@None"
    assert candidate_key("3f2a", 2.0) == "3f2a@2.0"


def test_a_candidate_key_is_its_architecture_hash_and_budget() -> None:
    space = SearchSpace("s").add_layers(
        Layer.input(shape=(1, 8, 8)), Layer.flatten(), Layer.output(units=10)
    )
    architecture = space.sample(0)
    assert Candidate(architecture).key == f"{architecture.hash}@None"
    assert Candidate(architecture, budget=4.0).key == candidate_key(architecture.hash, 4.0)
