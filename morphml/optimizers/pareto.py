"""Pareto fronts for several objectives: what `GET /experiments/{id}/pareto` and NSGA-II use.

Points are metric dicts; objectives say which metrics count and in which direction. A point
missing one of the metrics (a failed run) is on no front.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from morphml.optimizers.base import Objective

Vector = tuple[float, ...]
# The crowding distance of a front's extreme points: "infinite", but finite so state stays JSON.
BOUNDARY = 1e300


def pareto_front(
    points: Sequence[Mapping[str, float] | None],
    objectives: Sequence[Objective | Mapping[str, Any]],
) -> list[int]:
    """Indices (in input order) of the points no other point dominates."""
    parsed = [
        o if isinstance(o, Objective) else Objective(o["metric"], o.get("direction", "maximize"))
        for o in objectives
    ]
    vectors = {i: v for i, p in enumerate(points) if (v := as_vector(p, parsed)) is not None}
    fronts = nondominated_sort(list(vectors.values()))
    keys = list(vectors)
    return sorted(keys[i] for i in fronts[0]) if fronts else []


def as_vector(
    metrics: Mapping[str, float] | None, objectives: Sequence[Objective]
) -> Vector | None:
    """The metrics as a vector to maximise, or None when one is missing or not a number."""
    if metrics is None:
        return None
    values = [metrics.get(o.metric) for o in objectives]
    if not all(isinstance(v, int | float) and v == v for v in values):  # v == v: not NaN
        return None
    return tuple(o.sign() * float(v) for o, v in zip(objectives, values, strict=True))  # type: ignore[arg-type]


def dominates(a: Vector, b: Vector) -> bool:
    """`a` is at least as good everywhere and better somewhere (all objectives maximised)."""
    return all(x >= y for x, y in zip(a, b, strict=True)) and a != b


def nondominated_sort(vectors: Sequence[Vector]) -> list[list[int]]:
    """Fronts of indices: the first is the Pareto front, the next the front once it is removed..."""
    beaten_by = [[j for j in range(len(vectors)) if dominates(vectors[j], v)] for v in vectors]
    remaining = set(range(len(vectors)))
    fronts = []
    while remaining:
        front = sorted(i for i in remaining if not any(j in remaining for j in beaten_by[i]))
        fronts.append(front)
        remaining -= set(front)
    return fronts


def crowding_distance(vectors: Sequence[Vector], front: Sequence[int]) -> dict[int, float]:
    """NSGA-II crowding distance of each member of `front`: larger means lonelier (keep it)."""
    distance = dict.fromkeys(front, 0.0)
    for axis in range(len(vectors[front[0]]) if front else 0):
        ordered = sorted(front, key=lambda i: vectors[i][axis])
        span = vectors[ordered[-1]][axis] - vectors[ordered[0]][axis] or 1.0
        distance[ordered[0]] = distance[ordered[-1]] = BOUNDARY
        for before, here, after in zip(ordered, ordered[1:], ordered[2:], strict=False):
            distance[here] += (vectors[after][axis] - vectors[before][axis]) / span
    return distance
