"""Search spaces: the sequential layer DSL, cell spaces (NAS-Bench-201, DARTS-style, one-input
graph cells), and their JSON form."""

from typing import Any

from morphml.errors import SpaceError
from morphml.space.base import Resolver, Space
from morphml.space.cell import DARTS_OPS, NB201_OPS, CellEdge, CellSpace, CellStructure, InputSlot
from morphml.space.domains import Choice, FloatRange, IntRange
from morphml.space.layers import Layer
from morphml.space.space import SearchSpace


def space_from_dict(data: Any) -> Space:
    """Rebuild a space from `space.to_dict()` JSON; `type` is "sequential" (default) or "cell"."""
    if not isinstance(data, dict):
        raise SpaceError("search_space: expected an object")
    kind = data.get("type", "sequential")
    if kind == "sequential":
        return SearchSpace.from_dict(data)
    if kind == "cell":
        return CellSpace.from_dict(data)
    raise SpaceError(f"type: unknown space type {kind!r}; expected 'sequential' or 'cell'")


__all__ = [
    "DARTS_OPS",
    "NB201_OPS",
    "CellEdge",
    "CellSpace",
    "CellStructure",
    "Choice",
    "FloatRange",
    "InputSlot",
    "IntRange",
    "Layer",
    "Resolver",
    "SearchSpace",
    "Space",
    "space_from_dict",
]
