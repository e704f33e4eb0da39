"""Shared pieces of optimizer state: a JSON-able RNG and the architectures already proposed."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from morphml.architecture import Architecture
from morphml.space.base import Space

MAX_DRAWS = 1000


def rng_state(rng: random.Random) -> list[Any]:
    version, internal, gauss = rng.getstate()
    return [version, list(internal), gauss]


def load_rng(rng: random.Random, state: list[Any]) -> None:
    version, internal, gauss = state
    rng.setstate((version, tuple(internal), gauss))


def draw_new(
    space: Space, rng: random.Random, is_new: Callable[[str], bool]
) -> Architecture | None:
    """A sample whose hash `is_new` accepts, or None when MAX_DRAWS draws found none (space
    nearly exhausted). A predicate rather than a set, so that the caller can also consult what
    it does not hold in memory (`SearchBase.known`) one hash at a time."""
    for _ in range(MAX_DRAWS):
        architecture = space.sample(rng)
        if is_new(architecture.hash):
            return architecture
    return None
