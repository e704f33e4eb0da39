"""Domains of a search space's decision variables: categorical choices and int/float ranges."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any, TypeAlias

from morphml.errors import SpaceError

Value: TypeAlias = Any  # a JSON scalar (int, float, str, bool) or a list of them


@dataclass(frozen=True)
class Choice:
    """One of a finite list of options (a plain list in the DSL means this)."""

    options: tuple[Value, ...]

    def __post_init__(self) -> None:
        if not self.options:
            raise SpaceError("empty choice: give at least one option")

    def sample(self, rng: random.Random) -> Value:
        return self.options[rng.randrange(len(self.options))]

    def contains(self, value: Value) -> bool:
        return value in self.options

    def size(self) -> float:
        return len(self.options)

    def neighbours(self, value: Value) -> list[Value]:
        return [option for option in self.options if option != value]

    def extremes(self) -> list[Value]:
        return list(self.options)

    def to_dict(self) -> dict[str, Any]:
        return {"choice": list(self.options)}


@dataclass(frozen=True)
class IntRange:
    """An integer in [low, high], both included; `log` samples uniformly in log space."""

    low: int
    high: int
    log: bool = False

    def __post_init__(self) -> None:
        if self.low > self.high:
            raise SpaceError(f"int range low {self.low} is above high {self.high}")
        if self.log and self.low <= 0:
            raise SpaceError("a log-scale int range needs low > 0")

    def sample(self, rng: random.Random) -> int:
        if not self.log:
            return rng.randint(self.low, self.high)
        value = math.exp(rng.uniform(math.log(self.low), math.log(self.high + 1)))
        return min(self.high, max(self.low, int(value)))

    def contains(self, value: Value) -> bool:
        is_int = isinstance(value, int) and not isinstance(value, bool)
        return is_int and self.low <= value <= self.high

    def size(self) -> float:
        return self.high - self.low + 1

    def neighbours(self, value: Value) -> list[Value]:
        # Small steps in the range's own scale: +-1, or +-~25% on a log scale.
        step = max(1, round(value * 0.25)) if self.log else 1
        return [v for v in (value - step, value + step) if self.low <= v <= self.high]

    def extremes(self) -> list[Value]:
        return [self.low, self.high]

    def to_dict(self) -> dict[str, Any]:
        return {"int": [self.low, self.high], "log": self.log}


@dataclass(frozen=True)
class FloatRange:
    """A float in [low, high]; `log` samples uniformly in log space."""

    low: float
    high: float
    log: bool = False

    def __post_init__(self) -> None:
        if not self.low <= self.high:
            raise SpaceError(f"float range low {self.low} is above high {self.high}")
        if self.log and self.low <= 0:
            raise SpaceError("a log-scale float range needs low > 0")

    def sample(self, rng: random.Random) -> float:
        if self.log:
            return math.exp(rng.uniform(math.log(self.low), math.log(self.high)))
        return rng.uniform(self.low, self.high)

    def contains(self, value: Value) -> bool:
        is_number = isinstance(value, int | float) and not isinstance(value, bool)
        return is_number and self.low <= value <= self.high

    def size(self) -> float:
        return 1.0 if self.low == self.high else math.inf

    def neighbours(self, value: Value) -> list[Value]:
        if self.log:
            candidates = [value / 1.25, value * 1.25]
        else:
            width = (self.high - self.low) * 0.1
            candidates = [value - width, value + width]
        return [min(self.high, max(self.low, v)) for v in candidates if v != value]

    def extremes(self) -> list[Value]:
        return [self.low, self.high]

    def to_dict(self) -> dict[str, Any]:
        return {"float": [self.low, self.high], "log": self.log}


Domain: TypeAlias = Choice | IntRange | FloatRange


def as_domain(field: str, value: Any) -> Domain | None:
    """Turn a DSL or JSON value into a domain, or None when it is a constant."""
    if isinstance(value, Choice | IntRange | FloatRange):
        return value
    if isinstance(value, list | tuple):
        if not value:
            raise SpaceError(f"{field}: empty choice, give at least one option")
        return Choice(tuple(value))
    if isinstance(value, dict):
        return _domain_from_dict(field, value)
    return None


def _domain_from_dict(field: str, spec: dict[str, Any]) -> Domain:
    try:
        if "choice" in spec:
            return Choice(tuple(spec["choice"]))
        if "int" in spec:
            low, high = spec["int"]
            return IntRange(int(low), int(high), bool(spec.get("log", False)))
        if "float" in spec:
            low, high = spec["float"]
            return FloatRange(float(low), float(high), bool(spec.get("log", False)))
    except SpaceError as exc:
        raise SpaceError(f"{field}: {exc}") from None
    except (TypeError, ValueError):
        raise SpaceError(f"{field}: a range needs [low, high], got {spec!r}") from None
    raise SpaceError(f"{field}: a domain needs one of 'choice', 'int' or 'float', got {spec!r}")


def possible_values(field: str, value: Any) -> list[Value]:
    """The values a constant or domain may take, as far as checks need: options or range ends."""
    domain = as_domain(field, value)
    return [value] if domain is None else domain.extremes()
