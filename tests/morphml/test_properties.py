"""Property tests: whatever the space and seed, sampled, mutated and crossed-over architectures
are valid members that round-trip through JSON, build, run forward and export faithfully."""

from __future__ import annotations

import random

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from morphml import Architecture, Space
from morphml.mutation import crossover, mutate, neighbours
from tests.morphml.spaces import all_spaces

SPACES = all_spaces()
PROPERTY = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
seeds = st.integers(min_value=0, max_value=2**31)


def check_member(space: Space, architecture: Architecture) -> None:
    assert space.contains(architecture)
    again = Architecture.from_json(architecture.to_json())
    assert again.hash == architecture.hash
    assert again.config == architecture.config


def check_builds(architecture: Architecture) -> None:
    module = architecture.to_module().eval()
    batch = torch.randn(2, *architecture.input_shape)
    with torch.no_grad():
        out = module(batch)
    assert tuple(out.shape) == (2, *architecture.output_shape)
    assert sum(p.numel() for p in module.parameters()) == architecture.num_params
    namespace: dict[str, object] = {"__name__": "exported"}
    exec(compile(architecture.to_pytorch_source(), "<exported>", "exec"), namespace)
    exported = namespace["Net"]().eval()  # type: ignore[operator]
    assert sum(p.numel() for p in exported.parameters()) == architecture.num_params
    exported.load_state_dict(module.state_dict())
    with torch.no_grad():
        assert torch.allclose(exported(batch), out, atol=1e-5)


@pytest.mark.parametrize("name", sorted(SPACES))
@PROPERTY
@given(seed=seeds)
def test_sampled_architectures_are_valid_members(name: str, seed: int) -> None:
    space = SPACES[name]
    architecture = space.sample(seed)
    check_member(space, architecture)
    assert space.sample(seed).hash == architecture.hash  # reproducible from the seed
    check_builds(architecture)


@pytest.mark.parametrize("name", sorted(SPACES))
@PROPERTY
@given(seed=seeds)
def test_mutation_and_crossover_stay_in_the_space(name: str, seed: int) -> None:
    space, rng = SPACES[name], random.Random(seed)
    first, second = space.sample(rng), space.sample(rng)
    child = mutate(space, first, rng)
    assert child.hash != first.hash
    mixed = crossover(space, first, second, rng)
    for architecture in (child, mixed):
        check_member(space, architecture)
    check_builds(mixed)


@pytest.mark.parametrize("name", sorted(SPACES))
@settings(max_examples=5, deadline=None)
@given(seed=seeds)
def test_neighbours_are_distinct_members(name: str, seed: int) -> None:
    space, rng = SPACES[name], random.Random(seed)
    center = space.sample(rng)
    found = neighbours(space, center, rng)
    assert found
    assert len({a.hash for a in found}) == len(found)
    assert center.hash not in {a.hash for a in found}
    for architecture in found:
        check_member(space, architecture)
