"""Derived architectures carried in a task's metrics, from the supernet task to the optimizer.

A task's result is a flat dict of floats (at most `MAX_METRICS`, names up to 200 characters), so
the supernet task writes the cells it derived as `derived.{rank}.{variable}` = the index of the
chosen value in that variable's `Choice` (ranks from 1, best first) and `derived.{rank}.score`
= its validation accuracy with the shared weights. The `weight_sharing` optimizer reads them
back with `derived_configs`.

Torch-free on purpose: the server runs the optimizer, and the server never imports torch
(`morphml.weight_sharing` does, so this module lives here and is imported by both sides).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from morphml.space.base import Space
from morphml.space.domains import Choice, Value

MAX_METRICS = 64  # what one report or result may carry (morphml.wire.Metrics)
# Left for the supernet task's other metrics (its accuracy, seconds, how many it derived...).
RESERVED_METRICS = 8
PREFIX = "derived"


class Scored(Protocol):
    """What `derived_metrics` reads of a derived cell (`morphml.weight_sharing.Derived`)."""

    @property
    def config(self) -> Mapping[str, Any]: ...

    @property
    def score(self) -> float: ...


@dataclass(frozen=True)
class DerivedConfig:
    """A derived cell read back from metrics: its complete config and shared-weight score."""

    config: dict[str, Value]
    score: float


def max_top_k(space: Space) -> int:
    """How many derived cells fit in one result beside the reserved metrics (0: not one)."""
    per_rank = len(choices(space)) + 1
    return max(0, (MAX_METRICS - RESERVED_METRICS) // per_rank)


def choices(space: Space) -> dict[str, Choice]:
    """The space's variables, each a `Choice` (only those can be written as an index)."""
    found = {}
    for name, domain in space.variables().items():
        if not isinstance(domain, Choice):
            raise ValueError(f"{name}: a {type(domain).__name__} cannot be encoded as an index")
        found[name] = domain
    return found


def derived_metrics(space: Space, derived: Sequence[Scored]) -> dict[str, float]:
    """`derived` (best first) as metrics; ValueError if a config is not of the space or they
    would not fit in one result."""
    domains = choices(space)
    if len(derived) > max_top_k(space):
        raise ValueError(
            f"top_k: {len(derived)} derived cells of {len(domains)} variables do not fit in "
            f"{MAX_METRICS} metrics; at most {max_top_k(space)}"
        )
    metrics: dict[str, float] = {}
    for rank, cell in enumerate(derived, start=1):
        for name, domain in domains.items():
            value = cell.config.get(name)
            if value not in domain.options:
                raise ValueError(f"derived cell {rank}: {name} = {value!r} is not in the space")
            metrics[f"{PREFIX}.{rank}.{name}"] = float(domain.options.index(value))
        metrics[f"{PREFIX}.{rank}.score"] = float(cell.score)
    return metrics


def derived_configs(space: Space, metrics: Mapping[str, Any]) -> list[DerivedConfig]:
    """The cells `derived_metrics` wrote, best first (ranks 1, 2, ... while a score is there);
    ValueError naming the metric when one is missing, not an index, or out of range."""
    domains = choices(space)
    found = []
    rank = 1
    while f"{PREFIX}.{rank}.score" in metrics:
        score = _number(metrics, f"{PREFIX}.{rank}.score")
        config = {
            name: domain.options[_index(metrics, f"{PREFIX}.{rank}.{name}", len(domain.options))]
            for name, domain in domains.items()
        }
        found.append(DerivedConfig(config, score))
        rank += 1
    return found


def _index(metrics: Mapping[str, Any], name: str, size: int) -> int:
    value = _number(metrics, name)
    if value != int(value) or not 0 <= value < size:
        raise ValueError(f"{name}: {value!r} is not an index in [0, {size - 1}]")
    return int(value)


def _number(metrics: Mapping[str, Any], name: str) -> float:
    if name not in metrics:
        raise ValueError(f"{name}: missing from the supernet task's metrics")
    value = metrics[name]
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{name}: expected a finite number, got {value!r}")
    return float(value)
