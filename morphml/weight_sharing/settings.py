"""`SearchSettings`: what a weight-sharing search is asked to do, checked once, up front.

Every field is validated on construction (directly or through `from_dict`, the form a task's
params arrive in), so a bad value fails with a ValueError that names the field before a single
batch is trained. Upper bounds are there so that a typo (epochs=10**9) fails instead of hanging.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

METHODS = ("darts", "spos")
MAX_COUNT = 10_000  # epochs, population, generations
MAX_TOP_K = 1_000
MAX_BATCH = 65_536
MAX_SEED = 2**63 - 1


@dataclass(frozen=True)
class SearchSettings:
    """The settings of `morphml.weight_sharing.search`.

    Fields beyond the shared API: `patience` (DARTS early stop: epochs in a row the raw derived
    cell may hold more than `max_skip` skip_connect edges before the search stops) and
    `calib_batches` (training batches that re-estimate BatchNorm statistics before a sub-network
    is scored with the shared weights, as SPOS does).
    """

    method: str = "darts"
    epochs: int = 10
    order: int = 1
    max_skip: int | None = 2
    early_stop: bool = True
    top_k: int = 1
    population: int = 20
    generations: int = 10
    lr: float = 0.025
    arch_lr: float = 3e-4
    momentum: float = 0.9
    weight_decay: float = 3e-4
    arch_weight_decay: float = 1e-3
    batch_size: int = 64
    seed: int = 0
    patience: int = 2
    calib_batches: int = 4

    def __post_init__(self) -> None:
        _choice("method", self.method, METHODS)
        _int("epochs", self.epochs, 1, MAX_COUNT)
        _choice("order", self.order, (1, 2))
        if self.max_skip is not None:
            _int("max_skip", self.max_skip, 0, MAX_COUNT)
        if not isinstance(self.early_stop, bool):
            raise ValueError(f"early_stop: expected true or false, got {self.early_stop!r}")
        _int("top_k", self.top_k, 1, MAX_TOP_K)
        _int("population", self.population, 2, MAX_COUNT)
        _int("generations", self.generations, 0, MAX_COUNT)
        _float("lr", self.lr, 0.0, 10.0, open_low=True)
        _float("arch_lr", self.arch_lr, 0.0, 10.0, open_low=True)
        _float("momentum", self.momentum, 0.0, 1.0, open_high=True)
        _float("weight_decay", self.weight_decay, 0.0, 1.0)
        _float("arch_weight_decay", self.arch_weight_decay, 0.0, 1.0)
        _int("batch_size", self.batch_size, 1, MAX_BATCH)
        _int("seed", self.seed, 0, MAX_SEED)
        _int("patience", self.patience, 1, MAX_COUNT)
        _int("calib_batches", self.calib_batches, 0, MAX_COUNT)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SearchSettings:
        """Settings from a plain mapping (a task's params); ValueError names the bad field."""
        if not isinstance(data, dict):
            raise ValueError(f"settings: expected a mapping, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(str(key) for key in data if key not in known)
        if unknown:
            raise ValueError(f"{unknown[0]}: unknown weight-sharing setting")
        values = dict(data)
        for name in ("lr", "arch_lr", "momentum", "weight_decay", "arch_weight_decay"):
            # JSON writes 1.0 as 1: an int is a fine float, a bool is not.
            if isinstance(values.get(name), int) and not isinstance(values[name], bool):
                values[name] = float(values[name])
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _int(field: str, value: Any, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{field}: expected an integer in [{low}, {high}], got {value!r}")


def _float(
    field: str,
    value: Any,
    low: float,
    high: float,
    open_low: bool = False,
    open_high: bool = False,
) -> None:
    ok = isinstance(value, float | int) and not isinstance(value, bool)
    ok = ok and math.isfinite(value)
    ok = ok and (value > low if open_low else value >= low)
    ok = ok and (value < high if open_high else value <= high)
    if not ok:
        bounds = f"{'(' if open_low else '['}{low}, {high}{')' if open_high else ']'}"
        raise ValueError(f"{field}: expected a number in {bounds}, got {value!r}")


def _choice(field: str, value: Any, allowed: tuple[Any, ...]) -> None:
    if isinstance(value, bool) or value not in allowed:
        raise ValueError(f"{field}: expected one of {list(allowed)}, got {value!r}")
