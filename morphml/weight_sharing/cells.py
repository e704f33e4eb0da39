"""`CellLayout`: the edges a supernet holds for a cell space, and how a path is a config.

The supernet holds an edge from every earlier node into every intermediate node. A path gives
each edge an op index, or -1 where the edge is absent. In the dense form (`inputs_per_node`
null) every edge is present and is one config variable ("j<-i"). With input selection
(`inputs_per_node` k, DARTS's cells) each intermediate node keeps k of its edges: its config
variables "j.in{s}" / "j.op{s}" name the picked sources (written in increasing order) and
their ops.

A *unit* is what a config chooses at once: an edge (dense form) or a node's k picks (input
selection). Evolution mutates and crosses over units, and the DARTS derivation ranks each
unit's options by the log-probability the architecture weights give them.
"""

from __future__ import annotations

import itertools
import math
import random
from typing import Any

from morphml.space.cell import CellSpace

Path = list[int]  # per supernet edge: an op index into space.ops, or ABSENT
ABSENT = -1
SKIP = "skip_connect"
MAX_OPTIONS = 200_000  # per node: the ways of picking its inputs that a derivation ranks
SUPPORTED_OPS = (
    "none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3", "max_pool_3x3",
    "sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5",
)  # fmt: skip
Option = tuple[float, tuple[int, ...]]  # (log-probability, the unit's entries)


def check_supported(space: CellSpace) -> None:
    """The supernet mirrors sum-aggregated cells of built-in ops; anything else is refused."""
    if not isinstance(space, CellSpace):
        raise ValueError(f"space: weight sharing needs a CellSpace, got {type(space).__name__}")
    if getattr(space, "node_aggregation", "sum") != "sum":
        raise ValueError(
            "space.node_aggregation: weight sharing supports 'sum' only ('concat' sizes each "
            "node's 1x1 conv by how many of its edges are not 'none')"
        )
    unsupported = [op for op in space.ops if op not in SUPPORTED_OPS]
    if unsupported:
        raise ValueError(
            f"space.ops: weight sharing builds the built-in ops only, not {unsupported}"
        )


class CellLayout:
    """The supernet's edges of `space`, its units, and conversions between paths and configs."""

    def __init__(self, space: CellSpace) -> None:
        check_supported(space)
        self.space = space
        self.ops = space.ops
        self.cell_inputs: int = getattr(space, "cell_inputs", 1)
        self.picks: int | None = getattr(space, "inputs_per_node", None)
        self.nodes = range(self.cell_inputs, space.num_nodes)
        self.edges = [(j, i) for j in self.nodes for i in range(j)]
        self.index = {edge: e for e, edge in enumerate(self.edges)}
        if self.picks is None:
            self.units = [[e] for e in range(len(self.edges))]
        else:
            self.units = [[self.index[(j, i)] for i in range(j)] for j in self.nodes]
        none = [i for i, op in enumerate(self.ops) if op == "none"]
        # Input selection drops "none" from derived picks (a picked input is meant to be used;
        # DARTS's rule), unless it is the only op.
        derivable = [i for i in range(len(self.ops)) if i not in none]
        self.derive_ops = (
            derivable if self.picks is not None and derivable else list(range(len(self.ops)))
        )

    # paths and configs

    def to_config(self, path: Path) -> dict[str, Any]:
        if self.picks is None:
            keys = [f"{j}<-{i}" for j, i in self.edges]
            return {key: self.ops[op] for key, op in zip(keys, path, strict=True)}
        config: dict[str, Any] = {}
        for j, unit in zip(self.nodes, self.units, strict=True):
            picked = [(self.edges[e][1], path[e]) for e in unit if path[e] != ABSENT]
            for s, (source, op) in enumerate(sorted(picked)):
                config[f"{j}.in{s}"], config[f"{j}.op{s}"] = source, self.ops[op]
        return config

    def from_config(self, config: dict[str, Any]) -> Path:
        path = [ABSENT] * len(self.edges)
        for edge in self.space.edges(config):
            path[self.index[(edge.node, edge.source)]] = self.ops.index(edge.op)
        return path

    def skips(self, path: Path) -> int:
        return sum(op != ABSENT and self.ops[op] == SKIP for op in path)

    def min_skips(self) -> int:
        """The fewest skip_connect edges a derived cell can have."""
        if [self.ops[i] for i in self.derive_ops] != [SKIP]:
            return 0
        return len(self.edges) if self.picks is None else self.picks * len(self.nodes)

    # random draws, mutation, crossover (by unit)

    def draw(self, rng: random.Random) -> Path:
        """A uniform random path (each unit drawn uniformly)."""
        path = [ABSENT] * len(self.edges)
        for u in range(len(self.units)):
            self._draw(path, u, rng)
        return path

    def _draw(self, path: Path, u: int, rng: random.Random) -> None:
        unit = self.units[u]
        chosen = unit if self.picks is None else rng.sample(unit, self.picks)
        for e in unit:
            path[e] = rng.randrange(len(self.ops)) if e in chosen else ABSENT

    def mutate(self, path: Path, rng: random.Random) -> Path:
        """Every unit redrawn with probability 1/units, at least one, each into something new
        (when its unit has anything else to be)."""
        changed = list(path)
        units = [u for u in range(len(self.units)) if rng.random() < 1 / len(self.units)]
        for u in units or [rng.randrange(len(self.units))]:
            for _ in range(20):
                self._draw(changed, u, rng)
                if any(changed[e] != path[e] for e in self.units[u]):
                    break
        return changed

    def crossover(self, a: Path, b: Path, rng: random.Random) -> Path:
        child = list(a)
        for unit in self.units:
            if rng.random() < 0.5:
                for e in unit:
                    child[e] = b[e]
        return child

    # derivation

    def check_derivable(self) -> None:
        if self.picks is None:
            return
        count = (
            max(math.comb(j, self.picks) for j in self.nodes) * len(self.derive_ops) ** self.picks
        )
        if count > MAX_OPTIONS:
            raise ValueError(
                f"space.inputs_per_node: {count} ways to pick a node's inputs, more than the "
                f"{MAX_OPTIONS} a DARTS derivation ranks"
            )

    def options(self, u: int, logp: list[list[float]]) -> list[Option]:
        """A unit's choices, most probable first (ties: the space's order)."""
        unit = self.units[u]
        if self.picks is None:
            e = unit[0]
            found: list[Option] = [(logp[e][op], (op,)) for op in self.derive_ops]
        else:
            found = []
            for picked in itertools.combinations(range(len(unit)), self.picks):
                for ops in itertools.product(self.derive_ops, repeat=self.picks):
                    entries = [ABSENT] * len(unit)
                    for position, op in zip(picked, ops, strict=True):
                        entries[position] = op
                    score = float(sum(logp[unit[p]][op] for p, op in zip(picked, ops, strict=True)))
                    found.append((score, tuple(entries)))
        return sorted(found, key=lambda option: option[0], reverse=True)

    def assemble(self, chosen: list[tuple[int, ...]]) -> Path:
        path = [ABSENT] * len(self.edges)
        for unit, entries in zip(self.units, chosen, strict=True):
            for e, op in zip(unit, entries, strict=True):
                path[e] = op
        return path

    def option_skips(self, entries: tuple[int, ...]) -> int:
        return sum(op != ABSENT and self.ops[op] == SKIP for op in entries)


def config_of(space: CellSpace, path: Path) -> dict[str, Any]:
    """The config of `space` that `path` picks."""
    return CellLayout(space).to_config(path)
