"""Mutation, crossover and neighbourhoods over a space's decision variables.

All three work on an architecture's config and rebuild through the space, so every result is a
valid member of the same space: values come from the variables' own domains, and a change that
makes the shapes stop flowing is redrawn.
"""

from __future__ import annotations

import random

from morphml.architecture import Architecture
from morphml.errors import ArchitectureError, SpaceError
from morphml.space.base import Space
from morphml.space.domains import Value

MAX_ATTEMPTS = 100


def mutate(space: Space, parent: Architecture, rng: random.Random) -> Architecture:
    """Change one active variable of `parent` to another value of its domain.

    Variables that the change switches on (a deeper repeat, an enabled layer) are sampled.
    Falls back to a fresh sample when no change gives a new valid architecture.
    """
    domains = space.variables()
    keys = sorted(k for k in parent.config if k in domains)
    for _ in range(MAX_ATTEMPTS if keys else 0):
        key = keys[rng.randrange(len(keys))]
        options = domains[key].neighbours(parent.config[key])
        if not rng.random() < 0.5 or not options:
            options = [domains[key].sample(rng)]
        config = dict(parent.config)
        config[key] = options[rng.randrange(len(options))]
        child = _try_build(space, config, rng)
        if child is not None and child.hash != parent.hash:
            return child
    return space.sample(rng)


def crossover(
    space: Space, first: Architecture, second: Architecture, rng: random.Random
) -> Architecture:
    """Uniform crossover: each variable comes from one parent or the other, at random."""
    for _ in range(MAX_ATTEMPTS):
        config: dict[str, Value] = {}
        for key in sorted(set(first.config) | set(second.config)):
            sources = [p.config for p in (first, second) if key in p.config]
            config[key] = sources[rng.randrange(len(sources))][key]
        child = _try_build(space, config, rng)
        if child is not None:
            return child
    return mutate(space, first, rng)


def neighbours(space: Space, center: Architecture, rng: random.Random) -> list[Architecture]:
    """Every architecture one variable step away from `center` (distinct, valid, not `center`)."""
    domains = space.variables()
    found: dict[str, Architecture] = {}
    for key in sorted(center.config):
        if key not in domains:
            continue
        for value in domains[key].neighbours(center.config[key]):
            child = _try_build(space, {**center.config, key: value}, rng)
            if child is not None and child.hash != center.hash:
                found.setdefault(child.hash, child)
    return list(found.values())


def _try_build(space: Space, config: dict[str, Value], rng: random.Random) -> Architecture | None:
    try:
        return space.build(config, rng)
    except (ArchitectureError, SpaceError):
        return None
