"""What every search space offers: decision variables, sampling, building from a config, JSON.

A space is a deterministic function from a *config* (decision variable -> value) to an
architecture. Building reads variables through a `Resolver`, which records which variables were
active (an optional layer that is off reads none of its own), so optimizers can mutate, cross over
and encode configs without knowing the space's structure.
"""

from __future__ import annotations

import math
import random
from abc import ABC, abstractmethod
from typing import Any

from morphml.architecture import Architecture
from morphml.errors import ArchitectureError, SpaceError
from morphml.space.domains import Domain, Value

MAX_SAMPLE_ATTEMPTS = 200


class Resolver:
    """Answers a variable from `base` when it holds a valid value, else samples it; records all."""

    def __init__(self, rng: random.Random, base: dict[str, Value] | None = None) -> None:
        self.rng = rng
        self.base = base or {}
        self.config: dict[str, Value] = {}

    def __call__(self, key: str, domain: Domain) -> Value:
        value = self.base.get(key)
        if key not in self.base or not domain.contains(value):
            value = domain.sample(self.rng)
        self.config[key] = value
        return value


def as_rng(seed: random.Random | int | None) -> random.Random:
    return seed if isinstance(seed, random.Random) else random.Random(seed)


class Space(ABC):
    """A search space. Subclasses define `_build`, `variables`, `size` and `to_dict`."""

    name: str

    @abstractmethod
    def _build(self, resolve: Resolver) -> Architecture:
        """Build the architecture whose variables `resolve` answers."""

    @abstractmethod
    def variables(self) -> dict[str, Domain]:
        """Every decision variable the space may read, with its domain."""

    @abstractmethod
    def size(self) -> float:
        """The number of distinct configs (math.inf for continuous or unbounded spaces)."""

    @abstractmethod
    def to_dict(self) -> dict[str, Any]:
        """Plain JSON; `space_from_dict(space.to_dict())` gives an equal space."""

    def validate(self) -> None:
        """Raise a SpaceError unless some architecture of the space is valid."""
        self.sample(random.Random(0))

    def build(
        self, config: dict[str, Value], rng: random.Random | int | None = None
    ) -> Architecture:
        """The architecture of `config`; variables it lacks (or holds invalid) are sampled."""
        return self._build(Resolver(as_rng(rng), config))

    def sample(self, rng: random.Random | int | None = None) -> Architecture:
        """Draw a valid architecture; reproducible for a given seed or rng state."""
        return self.build_valid({}, as_rng(rng))

    def build_valid(self, config: dict[str, Value], rng: random.Random) -> Architecture:
        """Build `config`, resampling the variables it leaves open until the shapes flow."""
        error: ArchitectureError | None = None
        for _ in range(MAX_SAMPLE_ATTEMPTS):
            try:
                return self._build(Resolver(rng, config))
            except ArchitectureError as exc:
                error = exc
        raise SpaceError(f"space {self.name!r}: no valid architecture found: {error}")

    def contains(self, architecture: Architecture) -> bool:
        """True when `architecture` is a member: its config is in range and rebuilds it."""
        domains = self.variables()
        for key, value in architecture.config.items():
            if key not in domains or not domains[key].contains(value):
                return False
        try:
            rebuilt = self._build(Resolver(random.Random(0), architecture.config))
        except ArchitectureError:
            return False
        return rebuilt.hash == architecture.hash and rebuilt.config == architecture.config

    def size_label(self) -> int | str:
        size = self.size()
        return "infinite" if math.isinf(size) else int(size)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Space) and self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash(self.name)
