"""What a search space may cost, checked on its JSON before anything is built.

A 250-byte space can describe millions of nodes (`{"type": "cell", "num_nodes": 100000}`, a
repeat of depth `{"int": [0, 1e9]}`, repeats nested in repeats); building or sampling it would
take the host's memory. The bound is computed from the JSON alone: multiplied counts, never an
expansion, so the check itself costs the size of the JSON.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from morphml.errors import SpaceError
from morphml.space.cell_ops import primitive_count


@dataclass(frozen=True)
class SpaceLimits:
    """Upper bounds on one space; each error names the limit it hit."""

    max_nodes: int = 5_000  # nodes of the largest architecture the space can build
    max_variables: int = 10_000  # decision variables (choices the optimizers search over)
    max_repeat_depth: int = 100  # repetitions of one repeat block
    max_cell_nodes: int = 12  # nodes of a cell (edges grow with its square)
    max_cells_per_stage: int = 32


@dataclass(frozen=True)
class _Cost:
    nodes: float = 0
    variables: float = 0

    def __add__(self, other: _Cost) -> _Cost:
        return _Cost(self.nodes + other.nodes, self.variables + other.variables)


def check_space_limits(data: Any, limits: SpaceLimits) -> None:
    """SpaceError naming the field and the limit when the space may cost more than `limits`;
    malformed parts are left to the space's own validation."""
    if not isinstance(data, dict):
        return
    cost = (
        _cell_cost(data, limits) if data.get("type") == "cell" else _sequential_cost(data, limits)
    )
    _within(cost, limits, "search_space")


def _within(cost: _Cost, limits: SpaceLimits, where: str) -> None:
    if cost.nodes > limits.max_nodes:
        raise SpaceError(
            f"{where}: up to {cost.nodes:.0f} nodes in one architecture; "
            f"the limit is {limits.max_nodes} (max_nodes)"
        )
    if cost.variables > limits.max_variables:
        raise SpaceError(
            f"{where}: {cost.variables:.0f} decision variables; "
            f"the limit is {limits.max_variables} (max_variables)"
        )


def _cell_cost(data: dict[str, Any], limits: SpaceLimits) -> _Cost:
    nodes = _bounded(data.get("num_nodes", 4), "num_nodes", limits.max_cell_nodes, "max_cell_nodes")
    cells = _bounded(
        data.get("cells_per_stage", 5),
        "cells_per_stage",
        limits.max_cells_per_stage,
        "max_cells_per_stage",
    )
    inputs = _largest(data.get("cell_inputs", 1))
    picks = _largest(data.get("inputs_per_node"))
    if picks:  # each computed node picks this many inputs: a source and an op each
        slots = picks * max(0.0, nodes - inputs)
        variables = 2 * slots
    else:  # the dense form: an edge from every earlier node into every computed one
        slots = max(0.0, nodes * (nodes - 1) / 2 - inputs * (inputs - 1) / 2)
        variables = slots
    concat = 4  # concat, ReLU, conv 1x1, BN
    per_cell = _largest_op(data.get("ops")) * slots + nodes
    per_cell += nodes * concat if data.get("node_aggregation") == "concat" else 0
    per_cell += concat if data.get("cell_output") in ("sum", "concat") else 0
    # Three stages of cells, plus stem, reductions and head.
    return _Cost(nodes=3 * cells * per_cell + 20, variables=variables)


def _largest_op(ops: Any) -> float:
    """Primitive nodes of the costliest listed op (NAS-Bench-201's convs, 3, when unreadable)."""
    if not isinstance(ops, list) or not ops:
        return 3
    return max(primitive_count(op) if isinstance(op, str) else 1 for op in ops)


def _bounded(value: Any, field: str, limit: int, name: str) -> float:
    if not _is_number(value):
        return 0
    if value > limit:
        raise SpaceError(f"search_space.{field}: {value} is over the limit of {limit} ({name})")
    return float(value)


def _sequential_cost(data: dict[str, Any], limits: SpaceLimits) -> _Cost:
    layers = data.get("layers")
    return (
        _block_cost(layers, "search_space.layers", limits) if isinstance(layers, list) else _Cost()
    )


def _block_cost(elements: list[Any], where: str, limits: SpaceLimits) -> _Cost:
    total = _Cost()
    for index, element in enumerate(elements):
        if isinstance(element, dict):
            total = total + _element_cost(element, f"{where}[{index}]", limits)
            _within(total, limits, where)  # stop as soon as a block is over, before its parent
    return total


def _element_cost(element: dict[str, Any], where: str, limits: SpaceLimits) -> _Cost:
    inner = element.get("layers")
    block = _block_cost(inner, f"{where}.layers", limits) if isinstance(inner, list) else _Cost()
    kind = element.get("type")
    if kind == "repeat":
        depth = _largest(element.get("depth"))
        if depth > limits.max_repeat_depth:
            raise SpaceError(
                f"{where}.depth: up to {depth:g} repetitions; the limit is "
                f"{limits.max_repeat_depth} (max_repeat_depth)"
            )
        return _Cost(depth * block.nodes, 1 + depth * block.variables)
    if kind == "residual":
        return _Cost(block.nodes + 1, block.variables)
    choices = sum(isinstance(value, list | dict) for key, value in element.items() if key != "type")
    return _Cost(1, choices + bool(element.get("optional")))


def _largest(domain: Any) -> float:
    """The largest number a constant or domain JSON may take (0 when it holds none)."""
    if _is_number(domain):
        return float(domain)
    if isinstance(domain, dict):
        options = domain.get("choice", domain.get("int", domain.get("float")))
        return _largest(options)
    if isinstance(domain, list):
        return max((float(v) for v in domain if _is_number(v)), default=0)
    return 0


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
