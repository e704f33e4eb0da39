"""MorphML: neural architecture search, distributed over pull-based workers.

`Client` and `check_evaluator` are imported on first use: the client pulls in pydantic and httpx
(a second and more), which an evaluation process or `import morphml` should not pay for.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:
    from morphml.client import Client
    from morphml.evaluators.params import check_evaluator

__version__ = "0.1.0"

_LAZY = {"Client": "morphml.client", "check_evaluator": "morphml.evaluators.params"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'morphml' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = [
    "Architecture",
    "ArchitectureError",
    "CellSpace",
    "Choice",
    "Client",
    "FloatRange",
    "IntRange",
    "Layer",
    "MorphMLError",
    "Node",
    "SearchSpace",
    "Space",
    "SpaceError",
    "__version__",
    "check_evaluator",
    "space_from_dict",
]
