"""Feature vectors of configs for surrogate models: one-hot choices, scaled ranges, cell paths.

Every space gets one column per (choice variable, option) and one per range variable (scaled to
[0, 1], in log space for log ranges); an inactive variable leaves its columns at 0. A cell space of
NAS-Bench-201's dense form also gets the path encoding of White et al. 2021 (BANANAS): one column
per input->output path and op sequence, which describes what a cell computes better than its
edges do. The other cell forms (picked inputs, several cell inputs, concatenated nodes) keep the
one-hot columns only: their paths are not those edge chains.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import numpy.typing as npt

from morphml.space.base import Space
from morphml.space.cell import CellSpace
from morphml.space.domains import Choice, Domain, FloatRange, IntRange

Array = npt.NDArray[np.float64]


class Encoder:
    def __init__(self, space: Space, paths: bool = True) -> None:
        self.domains = sorted(space.variables().items())
        self.columns: dict[tuple[str, Any], int] = {}
        for key, domain in self.domains:
            options = domain.options if isinstance(domain, Choice) else (None,)
            for option in options:
                self.columns[(key, _hashable(option))] = len(self.columns)
        self.paths = (
            _cell_paths(space, len(self.columns))
            if paths and isinstance(space, CellSpace) and space.nb201_form
            else {}
        )
        self.width = len(self.columns) + sum(len(columns) for columns in self.paths.values())

    def encode(self, configs: list[dict[str, Any]]) -> Array:
        matrix = np.zeros((len(configs), self.width))
        for row, config in enumerate(configs):
            for column, value in self._entries(config):
                matrix[row, column] = value
        return matrix

    def _entries(self, config: dict[str, Any]) -> list[tuple[int, float]]:
        entries = []
        for key, domain in self.domains:
            if key not in config:
                continue
            if isinstance(domain, Choice):
                column = self.columns.get((key, _hashable(config[key])))
                if column is not None:
                    entries.append((column, 1.0))
            else:
                entries.append((self.columns[(key, None)], _scaled(domain, config[key])))
        for edges, columns in self.paths.items():
            column = columns.get(tuple(config.get(edge) for edge in edges))
            if column is not None:  # None: a "none" op cuts the path
                entries.append((column, 1.0))
        return entries


def _cell_paths(space: CellSpace, offset: int) -> dict[tuple[str, ...], dict[tuple[Any, ...], int]]:
    """For every input->output path (its edges), a column per sequence of non-'none' ops
    (NAS-Bench-201's dense form only: its edges are "j<-i" and its output is the last node)."""
    ops = [op for op in space.ops if op != "none"]
    last = space.num_nodes - 1
    inner = range(1, last)
    paths: dict[tuple[str, ...], dict[tuple[Any, ...], int]] = {}
    for size in range(len(inner) + 1):
        for middle in itertools.combinations(inner, size):
            nodes = (0, *middle, last)
            edges = tuple(f"{j}<-{i}" for i, j in itertools.pairwise(nodes))
            paths[edges] = {}
            for sequence in itertools.product(ops, repeat=len(edges)):
                paths[edges][sequence] = offset
                offset += 1
    return paths


def _scaled(domain: Domain, value: Any) -> float:
    assert isinstance(domain, IntRange | FloatRange)
    low, high, x = float(domain.low), float(domain.high), float(value)
    if domain.log:
        low, high, x = math.log(low), math.log(high), math.log(x)
    return 0.0 if high == low else (x - low) / (high - low)


def _hashable(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value
