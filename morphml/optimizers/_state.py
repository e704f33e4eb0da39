"""Shared pieces of optimizer state: a JSON-able RNG and the architectures already proposed."""

from __future__ import annotations

import random
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


def draw_new(space: Space, rng: random.Random, seen: set[str]) -> Architecture | None:
    """A sample not in `seen`, or None when MAX_DRAWS draws found none (space nearly exhausted)."""
    for _ in range(MAX_DRAWS):
        architecture = space.sample(rng)
        if architecture.hash not in seen:
            return architecture
    return None
