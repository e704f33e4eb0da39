"""Shared pieces of optimizer state: a JSON-able RNG and the architectures already proposed."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

from morphml.architecture import Architecture
from morphml.space.base import Space

MAX_DRAWS = 1000
# A round of draws also stops after this long: in a space of a few huge architectures (thousands
# of layers, each draw tens of milliseconds) a thousand draws that find nothing new would take
# minutes. What it found so far is returned; none means "exhausted for now", as after MAX_DRAWS.
DRAW_SECONDS = 2.0


def rng_state(rng: random.Random) -> list[Any]:
    version, internal, gauss = rng.getstate()
    return [version, list(internal), gauss]


def load_rng(rng: random.Random, state: list[Any]) -> None:
    version, internal, gauss = state
    rng.setstate((version, tuple(internal), gauss))


def draw_new(
    space: Space, rng: random.Random, is_new: Callable[[str], bool]
) -> Architecture | None:
    """A sample whose hash `is_new` accepts, or None when MAX_DRAWS draws (or DRAW_SECONDS)
    found none (space nearly exhausted). A predicate rather than a set, so that the caller can
    also consult what it does not hold in memory (`SearchBase.known`) one hash at a time."""
    deadline = time.monotonic() + DRAW_SECONDS
    for _ in range(MAX_DRAWS):
        architecture = space.sample(rng)
        if is_new(architecture.hash):
            return architecture
        if time.monotonic() > deadline:
            break
    return None


def draw_many_new(
    space: Space, rng: random.Random, count: int, unseen: Callable[[list[str]], set[str]]
) -> list[Architecture]:
    """The first `count` new samples, as `count` calls of `draw_new` would find them, but with
    one `unseen` question per round of draws rather than one per draw (a round is as many draws
    as are still missing). Fewer once MAX_DRAWS draws in a row found nothing new, or after
    DRAW_SECONDS."""
    found: dict[str, Architecture] = {}
    misses = 0
    deadline = time.monotonic() + DRAW_SECONDS
    while len(found) < count and misses < MAX_DRAWS and time.monotonic() < deadline:
        samples = [space.sample(rng) for _ in range(count - len(found))]
        fresh = unseen([sample.hash for sample in samples if sample.hash not in found])
        for sample in samples:
            if sample.hash in fresh and sample.hash not in found:
                found[sample.hash], misses = sample, 0
            else:
                misses += 1
    return list(found.values())
