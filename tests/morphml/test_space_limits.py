"""Space limits are computed from the JSON alone: hostile sizes are refused at once."""

from __future__ import annotations

import time
from typing import Any

import pytest

from morphml.errors import SpaceError
from morphml.space import CellSpace, space_from_dict
from morphml.space.limits import SpaceLimits, check_space_limits
from tests.morphml.spaces import all_spaces

LIMITS = SpaceLimits()


def test_the_shipped_and_test_spaces_are_within_the_default_limits() -> None:
    for space in [CellSpace(), *all_spaces().values()]:
        check_space_limits(space.to_dict(), LIMITS)


def test_a_billion_repetitions_are_refused_without_enumerating_them() -> None:
    space = {
        "type": "sequential",
        "name": "x",
        "layers": [{"type": "repeat", "depth": {"int": [0, 10**9]}, "layers": [{"type": "relu"}]}],
    }
    started = time.perf_counter()
    with pytest.raises(SpaceError, match="max_repeat_depth"):
        check_space_limits(space, LIMITS)
    assert time.perf_counter() - started < 1.0


def test_nested_repeats_multiply() -> None:
    inner: dict[str, Any] = {"type": "repeat", "depth": 80, "layers": [{"type": "relu"}]}
    outer = {"type": "repeat", "depth": [1, 80], "layers": [inner]}
    with pytest.raises(SpaceError, match="max_nodes"):
        check_space_limits({"type": "sequential", "name": "x", "layers": [outer]}, LIMITS)


def test_variables_are_counted_per_repetition() -> None:
    dense = {"type": "dense", "units": [8, 16]}
    block = {"type": "repeat", "depth": 50, "layers": [dense] * 50}
    small = SpaceLimits(max_variables=2_000)
    with pytest.raises(SpaceError, match="max_variables"):
        check_space_limits({"type": "sequential", "name": "x", "layers": [block]}, small)


def test_cell_limits() -> None:
    with pytest.raises(SpaceError, match="max_cell_nodes"):
        check_space_limits({"type": "cell", "num_nodes": 100_000}, LIMITS)
    with pytest.raises(SpaceError, match="max_cells_per_stage"):
        check_space_limits({"type": "cell", "cells_per_stage": 10**6}, LIMITS)


def test_malformed_parts_are_left_to_the_space_itself() -> None:
    odd = {"type": "sequential", "name": "x", "layers": [5, {"type": "repeat", "depth": "a"}]}
    check_space_limits(odd, LIMITS)
    with pytest.raises(SpaceError):
        space_from_dict(odd)
