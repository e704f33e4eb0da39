"""MorphML: neural architecture search, distributed over pull-based workers."""

from morphml.architecture import Architecture, Node
from morphml.errors import ArchitectureError, MorphMLError, SpaceError
from morphml.space import (
    CellSpace,
    Choice,
    FloatRange,
    IntRange,
    Layer,
    SearchSpace,
    Space,
    space_from_dict,
)

__version__ = "0.1.0"

__all__ = [
    "Architecture",
    "ArchitectureError",
    "CellSpace",
    "Choice",
    "FloatRange",
    "IntRange",
    "Layer",
    "MorphMLError",
    "Node",
    "SearchSpace",
    "Space",
    "SpaceError",
    "__version__",
    "space_from_dict",
]
