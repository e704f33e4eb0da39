"""Numeric decision variables on a continuous line, for optimizers that do arithmetic on them.

An IntRange or FloatRange maps to an interval of the real line: log ranges in log space, and an
int range widened by half a step at each end, so that rounding gives every integer the same
share of the line (the ends included). `to_line` and `from_line` go there and back; `from_line`
rounds and clips, so any real number maps to a member of the domain.
"""

from __future__ import annotations

import math

from morphml.space.domains import FloatRange, IntRange, Value

Numeric = IntRange | FloatRange


def interval(domain: Numeric) -> tuple[float, float]:
    """The ends of the domain's line (low < high unless a float range is a single point)."""
    pad = 0.5 if isinstance(domain, IntRange) else 0.0
    low, high = float(domain.low) - pad, float(domain.high) + pad
    if domain.log:
        return math.log(low), math.log(high)
    return low, high


def to_line(domain: Numeric, value: Value) -> float:
    return math.log(float(value)) if domain.log else float(value)


def from_line(domain: Numeric, point: float) -> Value:
    """The member of the domain nearest to `point` (rounded for ints, clipped to the range)."""
    low, high = interval(domain)
    point = min(high, max(low, point))
    value = math.exp(point) if domain.log else point
    if isinstance(domain, IntRange):
        return min(domain.high, max(domain.low, round(value)))
    return min(float(domain.high), max(float(domain.low), value))


def to_unit(domain: Numeric, value: Value) -> float:
    """The value's position on its line scaled to [0, 1] (0 for a single-point range)."""
    low, high = interval(domain)
    return 0.0 if high == low else (to_line(domain, value) - low) / (high - low)


def from_unit(domain: Numeric, unit: float) -> Value:
    low, high = interval(domain)
    return from_line(domain, low + unit * (high - low))
