"""`CellSpace`: a NAS-Bench-201 style cell (a DAG of N nodes, one op per edge) in a macro network.

The macro network follows NAS-Bench-201: a 3x3 conv stem, three stages of `cells_per_stage`
cells (channels C, 2C, 4C) joined by ResNet reduction blocks, then BN-ReLU, global average
pooling and a linear classifier. Every cell shares the searched genotype, written in the
benchmark's string form `|nor_conv_3x3~0|+|none~0|avg_pool_3x3~1|+|...|`.
"""

from __future__ import annotations

from typing import Any

from morphml.architecture import Architecture, Node
from morphml.errors import SpaceError
from morphml.space.base import Resolver, Space
from morphml.space.domains import Choice, Domain

NB201_OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
_FIELDS = (
    "name",
    "num_nodes",
    "ops",
    "input_shape",
    "stem_channels",
    "cells_per_stage",
    "num_classes",
)


def edge_keys(num_nodes: int) -> list[str]:
    """Variable names of the edges in NAS-Bench-201 string order: "1<-0", "2<-0", "2<-1", ..."""
    return [f"{j}<-{i}" for j in range(1, num_nodes) for i in range(j)]


class _Net:
    """Emits the primitive nodes of the macro network."""

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

    def edge(self, op: str, x: str, channels: int) -> str | None:
        if op == "none":
            return None
        if op == "skip_connect":
            return x
        if op == "avg_pool_3x3":
            return self.add("avgpool", (x,), pool_size=3, stride=1, padding=1)
        kernel = 1 if op == "nor_conv_1x1" else 3
        return self.relu_conv_bn(x, channels, kernel)

    def cell(self, x: str, genotype: dict[str, str], num_nodes: int, channels: int) -> str:
        states = [x]
        for j in range(1, num_nodes):
            terms = [self.edge(genotype[f"{j}<-{i}"], states[i], channels) for i in range(j)]
            present = [t for t in terms if t is not None]
            if not present:
                states.append(self.add("zero", (x,)))
            elif len(present) == 1:
                states.append(present[0])
            else:
                states.append(self.add("add", tuple(present)))
        return states[-1]

    def reduction(self, x: str, channels: int) -> str:
        a = self.relu_conv_bn(x, channels, 3, stride=2)
        a = self.relu_conv_bn(a, channels, 3)
        shortcut = self.add("avgpool", (x,), pool_size=2, stride=2)
        shortcut = self.add("conv2d", (shortcut,), filters=channels, kernel_size=1, bias=False)
        return self.add("add", (a, shortcut))

    def live_nodes(self) -> list[Node]:
        """Drop nodes whose result never reaches the output (a cell edge into a dead end)."""
        used = {self.nodes[-1].id}
        for node in reversed(self.nodes):
            if node.id in used:
                used.update(node.inputs)
        return [node for node in self.nodes if node.id in used]


class CellSpace(Space):
    """A NAS-Bench-201 style cell space; `CellSpace()` is NAS-Bench-201 itself (15,625 cells)."""

    def __init__(
        self,
        name: str = "nas-bench-201",
        num_nodes: int = 4,
        ops: tuple[str, ...] | list[str] = NB201_OPS,
        input_shape: tuple[int, ...] | list[int] = (3, 32, 32),
        stem_channels: int = 16,
        cells_per_stage: int = 5,
        num_classes: int = 10,
    ) -> None:
        self.name = name
        self.num_nodes = _positive("num_nodes", num_nodes, minimum=2)
        self.ops = tuple(ops)
        unknown = [op for op in self.ops if op not in NB201_OPS]
        if not self.ops or unknown:
            raise SpaceError(f"ops: expected a non-empty subset of {list(NB201_OPS)}, got {ops}")
        shape = list(input_shape)
        if len(shape) != 3 or not all(isinstance(v, int) and v > 0 for v in shape):
            raise SpaceError(f"input_shape: expected [C, H, W] of positive ints, got {shape}")
        self.input_shape = tuple(shape)
        self.stem_channels = _positive("stem_channels", stem_channels)
        self.cells_per_stage = _positive("cells_per_stage", cells_per_stage)
        self.num_classes = _positive("num_classes", num_classes)
        self.validate()

    def variables(self) -> dict[str, Domain]:
        return {key: Choice(self.ops) for key in edge_keys(self.num_nodes)}

    def size(self) -> float:
        return float(len(self.ops) ** len(edge_keys(self.num_nodes)))

    def _build(self, resolve: Resolver) -> Architecture:
        genotype = {key: resolve(key, domain) for key, domain in self.variables().items()}
        net = _Net()
        x = net.add("input", (), shape=list(self.input_shape))
        x = net.add("conv2d", (x,), filters=self.stem_channels, kernel_size=3, bias=False)
        x = net.add("batchnorm", (x,))
        for stage in range(3):
            channels = self.stem_channels * 2**stage
            if stage:
                x = net.reduction(x, channels)
            for _ in range(self.cells_per_stage):
                x = net.cell(x, genotype, self.num_nodes, channels)
        x = net.add("batchnorm", (x,))
        x = net.add("activation", (x,), fn="relu")
        x = net.add("global_avgpool", (x,))
        net.add("output", (x,), units=self.num_classes)
        return Architecture(net.live_nodes(), config=resolve.config, space=self.name)

    def to_nb201(self, architecture: Architecture) -> str:
        """The NAS-Bench-201 string of an architecture of this space."""
        nodes = []
        for j in range(1, self.num_nodes):
            ops = [f"{architecture.config[f'{j}<-{i}']}~{i}" for i in range(j)]
            nodes.append("|" + "|".join(ops) + "|")
        return "+".join(nodes)

    def from_nb201(self, text: str) -> Architecture:
        """Parse a NAS-Bench-201 string such as `|nor_conv_3x3~0|+|none~0|skip_connect~1|+|...|`."""
        config: dict[str, str] = {}
        parts = text.strip().split("+")
        if len(parts) != self.num_nodes - 1:
            raise SpaceError(
                f"genotype: expected {self.num_nodes - 1} '+'-separated nodes: {text!r}"
            )
        for j, part in enumerate(parts, start=1):
            edges = [e for e in part.strip("|").split("|") if e]
            if len(edges) != j:
                raise SpaceError(f"genotype: node {j} needs {j} edges, got {part!r}")
            for edge in edges:
                op, _, source = edge.partition("~")
                if op not in self.ops or not source.isdigit() or int(source) >= j:
                    raise SpaceError(f"genotype: bad edge {edge!r} into node {j}")
                config[f"{j}<-{source}"] = op
        if len(config) != len(edge_keys(self.num_nodes)):
            raise SpaceError(f"genotype: repeated edges in {text!r}")
        return self.build(config)

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": "cell",
            "name": self.name,
            "num_nodes": self.num_nodes,
            "ops": list(self.ops),
            "input_shape": list(self.input_shape),
            "stem_channels": self.stem_channels,
            "cells_per_stage": self.cells_per_stage,
            "num_classes": self.num_classes,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CellSpace:
        unknown = set(data) - set(_FIELDS) - {"type"}
        if unknown:
            raise SpaceError(f"{sorted(unknown)[0]}: unknown field of a cell space")
        return cls(**{k: v for k, v in data.items() if k != "type"})


def _positive(field: str, value: Any, minimum: int = 1) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise SpaceError(f"{field}: expected an int >= {minimum}, got {value!r}")
    return value


__all__ = ["NB201_OPS", "CellSpace", "edge_keys"]
