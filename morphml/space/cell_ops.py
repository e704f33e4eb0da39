"""The ops a cell's edges may apply, each written as primitive nodes of morphml/ops.py.

Built in: NAS-Bench-201's five ops and DARTS's pooling, separable and dilated convolutions, as
the two papers define them (every op keeps its input's shape). A cell space may also name its
own ops in `custom_ops`: each becomes one `cell_op` node carrying the name, which a python
evaluator reads (or `morphml.torch_build.register_cell_op` builds), so the server validates a
space that uses them without importing any user code.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from morphml.architecture import Node

NB201_OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
# DARTS's final-genotype ops (its search adds "none", which a derived cell never keeps).
DARTS_OPS = (
    "max_pool_3x3",
    "avg_pool_3x3",
    "skip_connect",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "dil_conv_3x3",
    "dil_conv_5x5",
)


class Graph:
    """Emits primitive nodes with ids n0, n1, ... in order."""

    def __init__(self) -> None:
        self.nodes: list[Node] = []

    def add(self, op: str, inputs: tuple[str, ...], **params: Any) -> str:
        node_id = f"n{len(self.nodes)}"
        self.nodes.append(Node(node_id, op, params, inputs))
        return node_id

    def relu_conv_bn(self, x: str, channels: int, kernel: int, stride: int = 1) -> str:
        x = self.add("activation", (x,), fn="relu")
        x = self.add(
            "conv2d", (x,), filters=channels, kernel_size=kernel, stride=stride, bias=False
        )
        return self.add("batchnorm", (x,))

    def live_nodes(self) -> list[Node]:
        """Drop nodes whose result never reaches the output (a cell edge into a dead end)."""
        used = {self.nodes[-1].id}
        for node in reversed(self.nodes):
            if node.id in used:
                used.update(node.inputs)
        return [node for node in self.nodes if node.id in used]


# An edge op: (graph, input node id, channels) -> output node id, or None for "none" (no edge).
EdgeOp = Callable[[Graph, str, int], str | None]


def _dilated(graph: Graph, x: str, channels: int, kernel: int, dilation: int) -> str:
    """DARTS's DilConv: ReLU, a depthwise (dilated) conv, a pointwise conv, BN."""
    x = graph.add("activation", (x,), fn="relu")
    x = graph.add(
        "conv2d",
        (x,),
        filters=channels,
        kernel_size=kernel,
        groups=channels,
        dilation=dilation,
        bias=False,
    )
    x = graph.add("conv2d", (x,), filters=channels, kernel_size=1, bias=False)
    return graph.add("batchnorm", (x,))


def _separable(kernel: int) -> EdgeOp:
    """DARTS's SepConv: its depthwise-separable unit twice."""
    return lambda g, x, c: _dilated(g, _dilated(g, x, c, kernel, 1), c, kernel, 1)


def _dilated_conv(kernel: int) -> EdgeOp:
    return lambda g, x, c: _dilated(g, x, c, kernel, 2)


def _conv(kernel: int) -> EdgeOp:
    return lambda g, x, c: g.relu_conv_bn(x, c, kernel)


def _pool(op: str) -> EdgeOp:
    # Stride 1, padding 1: the shape is kept; avgpool's padding never dilutes the average.
    return lambda g, x, c: g.add(op, (x,), pool_size=3, stride=1, padding=1)


BUILTIN_OPS: dict[str, EdgeOp] = {
    "none": lambda g, x, c: None,
    "skip_connect": lambda g, x, c: x,
    "nor_conv_1x1": _conv(1),
    "nor_conv_3x3": _conv(3),
    "avg_pool_3x3": _pool("avgpool"),
    "max_pool_3x3": _pool("maxpool"),
    "sep_conv_3x3": _separable(3),
    "sep_conv_5x5": _separable(5),
    "dil_conv_3x3": _dilated_conv(3),
    "dil_conv_5x5": _dilated_conv(5),
}


def edge_op(name: str, custom_ops: tuple[str, ...]) -> EdgeOp:
    """The op `name`: a built-in one, or a user's (one `cell_op` node named `name`)."""
    if name in custom_ops:
        return lambda g, x, c: g.add("cell_op", (x,), name=name)
    return BUILTIN_OPS[name]


def primitive_count(name: str) -> int:
    """How many primitive nodes the op emits per edge (a user's op: one), for cost bounds."""
    if name not in BUILTIN_OPS:
        return 1
    graph = Graph()
    BUILTIN_OPS[name](graph, "x", 1)
    return len(graph.nodes)


__all__ = [
    "BUILTIN_OPS",
    "DARTS_OPS",
    "NB201_OPS",
    "EdgeOp",
    "Graph",
    "edge_op",
    "primitive_count",
]
