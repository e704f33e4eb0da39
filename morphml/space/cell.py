"""`CellSpace`: a searched cell (a small DAG of nodes) stacked in a fixed macro network.

The macro network follows NAS-Bench-201: a 3x3 conv stem, three stages of `cells_per_stage`
cells (channels C, 2C, 4C) joined by ResNet reduction blocks, then BN-ReLU, global average
pooling and a linear classifier. Every cell shares the searched genotype. Only the cell is
searched; the reduction blocks are fixed (as in NAS-Bench-201, unlike DARTS's reduction cells).

A cell has `num_nodes` nodes: first its `cell_inputs` inputs, then its intermediate nodes, each
computing `op(earlier node)` for each of its inputs and aggregating the results.

- `ops`: the candidate ops; built-in ones (morphml/space/cell_ops.py: NAS-Bench-201's `none`,
  `skip_connect`, `nor_conv_1x1`, `nor_conv_3x3`, `avg_pool_3x3` and DARTS's `max_pool_3x3`,
  `sep_conv_3x3/5x5`, `dil_conv_3x3/5x5`) or a user's own, declared in `custom_ops`.
- `custom_ops` (default none): names of user-defined, shape-preserving ops, each built as one
  `cell_op` node carrying its name. A python evaluator builds its own model from the
  architecture (`CellSpace.edges`); `to_module()` needs `torch_build.register_cell_op`.
  Declaring the names in the space lets the server validate it without any user code.
- `inputs_per_node`: None (the default, NAS-Bench-201's dense form): every earlier node feeds
  every intermediate node through an edge op, variables "j<-i". An int k: each intermediate
  node j picks k distinct inputs among the nodes before it (cell inputs included), each with its
  own op: variables "j.in0" (an earlier node's index), "j.op0", ..., "j.in{k-1}", "j.op{k-1}".
  DARTS: k = 2; a GNN-style chain of picks: k = 1.
- `cell_inputs` (default 1): the outputs of the previous `cell_inputs` cells of the stage, the
  oldest first (DARTS: 2, its s0 and s1). The stage's input stands in for cells that do not
  exist (the first cells of a stage), so all of a stage's tensors share one shape and no
  preprocessing is needed.
- `node_aggregation`: how a node combines its inputs: "sum" (default) or "concat" (channels
  concatenated, then ReLU-conv1x1-BN back to C channels). A node with one live input is that
  input; a node whose inputs are all `none` is zero.
- `cell_output`: "last" (default, NAS-Bench-201: the last node), or "sum" / "concat" of all
  intermediate nodes (DARTS concatenates them all, used or not); "concat" is followed by
  ReLU-conv1x1-BN back to C channels (DARTS's next-cell preprocessing), keeping the macro
  network's shapes.

`CellSpace()` is NAS-Bench-201 itself (15,625 cells). A new field at its default is left out of
`to_dict()`, and every spelling from before these fields existed builds the same architectures
with the same hashes (tests/morphml/space/test_hash_stability.py). Two configs that build the
same network share a hash: `add` is unordered, and a "concat" is followed by a 1x1 conv, which
makes its input order irrelevant (Architecture.hash).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any

from morphml.architecture import Architecture
from morphml.errors import ArchitectureError, SpaceError
from morphml.ops import CELL_OP_NAME
from morphml.space.base import Resolver, Space
from morphml.space.cell_ops import BUILTIN_OPS, DARTS_OPS, NB201_OPS, Graph, edge_op
from morphml.space.domains import Choice, Domain

NODE_AGGREGATIONS = ("sum", "concat")
CELL_OUTPUTS = ("last", "sum", "concat")
# The fields added after NAS-Bench-201, with their defaults: left out of to_dict() at these.
_NEW_FIELDS: dict[str, Any] = {
    "inputs_per_node": None,
    "cell_inputs": 1,
    "node_aggregation": "sum",
    "cell_output": "last",
    "custom_ops": [],
}
_FIELDS = (
    "name",
    "num_nodes",
    "ops",
    "input_shape",
    "stem_channels",
    "cells_per_stage",
    "num_classes",
    *_NEW_FIELDS,
)


def edge_keys(num_nodes: int, cell_inputs: int = 1) -> list[str]:
    """Variable names of the dense form's edges in NAS-Bench-201 string order: "1<-0", "2<-0",
    "2<-1", ... (into every node after the cell inputs)."""
    return [f"{j}<-{i}" for j in range(cell_inputs, num_nodes) for i in range(j)]


@dataclass(frozen=True)
class InputSlot:
    """One input of an intermediate node: the nodes it may read and its config variables.

    A dense edge has one fixed source (`source_key` None); a picked input chooses its source
    among `sources` (distinct from the node's other slots) through `source_key`.
    """

    node: int
    sources: tuple[int, ...]
    op_key: str
    source_key: str | None = None


@dataclass(frozen=True)
class CellEdge:
    """A chosen edge of a cell: node `node` applies `op` to node `source`."""

    node: int
    source: int
    op: str


@dataclass(frozen=True)
class CellStructure:
    """What a cell may look like: its nodes, every input slot with its candidates, the ops and
    how nodes and the cell aggregate (what a supernet mirrors)."""

    num_nodes: int
    cell_inputs: int
    ops: tuple[str, ...]
    custom_ops: tuple[str, ...]
    slots: tuple[InputSlot, ...]
    node_aggregation: str
    cell_output: str

    @property
    def intermediate_nodes(self) -> range:
        return range(self.cell_inputs, self.num_nodes)

    def node_slots(self, node: int) -> tuple[InputSlot, ...]:
        return tuple(slot for slot in self.slots if slot.node == node)


def _slots(num_nodes: int, cell_inputs: int, inputs_per_node: int | None) -> list[InputSlot]:
    if inputs_per_node is None:
        return [
            InputSlot(j, (i,), f"{j}<-{i}") for j in range(cell_inputs, num_nodes) for i in range(j)
        ]
    return [
        InputSlot(j, tuple(range(j)), f"{j}.op{s}", f"{j}.in{s}")
        for j in range(cell_inputs, num_nodes)
        for s in range(inputs_per_node)
    ]


class CellSpace(Space):
    """A cell space; `CellSpace()` is NAS-Bench-201 itself (15,625 cells). See the module doc."""

    def __init__(
        self,
        name: str = "nas-bench-201",
        num_nodes: int = 4,
        ops: tuple[str, ...] | list[str] = NB201_OPS,
        input_shape: tuple[int, ...] | list[int] = (3, 32, 32),
        stem_channels: int = 16,
        cells_per_stage: int = 5,
        num_classes: int = 10,
        inputs_per_node: int | None = None,
        cell_inputs: int = 1,
        node_aggregation: str = "sum",
        cell_output: str = "last",
        custom_ops: tuple[str, ...] | list[str] = (),
    ) -> None:
        self.name = name
        self.num_nodes = _positive("num_nodes", num_nodes, minimum=2)
        self.cell_inputs = _positive("cell_inputs", cell_inputs)
        if self.cell_inputs >= self.num_nodes:
            raise SpaceError(
                f"cell_inputs: a cell of {self.num_nodes} nodes has at most "
                f"{self.num_nodes - 1} inputs (one node must be computed), got {cell_inputs}"
            )
        self.custom_ops = _custom_ops(custom_ops)
        self.ops = _ops(ops, self.custom_ops)
        self.inputs_per_node = _inputs_per_node(inputs_per_node, self.cell_inputs)
        self.node_aggregation = _one_of("node_aggregation", node_aggregation, NODE_AGGREGATIONS)
        self.cell_output = _one_of("cell_output", cell_output, CELL_OUTPUTS)
        shape = list(input_shape)
        if len(shape) != 3 or not all(isinstance(v, int) and v > 0 for v in shape):
            raise SpaceError(f"input_shape: expected [C, H, W] of positive ints, got {shape}")
        self.input_shape = tuple(shape)
        self.stem_channels = _positive("stem_channels", stem_channels)
        self.cells_per_stage = _positive("cells_per_stage", cells_per_stage)
        self.num_classes = _positive("num_classes", num_classes)
        self.structure = CellStructure(
            self.num_nodes,
            self.cell_inputs,
            self.ops,
            self.custom_ops,
            tuple(_slots(self.num_nodes, self.cell_inputs, self.inputs_per_node)),
            self.node_aggregation,
            self.cell_output,
        )
        self.validate()

    @property
    def nb201_form(self) -> bool:
        """True for NAS-Bench-201's form: dense edges into the last node of a one-input cell."""
        return (
            self.inputs_per_node is None
            and self.cell_inputs == 1
            and self.node_aggregation == "sum"
            and self.cell_output == "last"
        )

    def variables(self) -> dict[str, Domain]:
        found: dict[str, Domain] = {}
        for slot in self.structure.slots:
            if slot.source_key is not None:
                found[slot.source_key] = Choice(slot.sources)
            found[slot.op_key] = Choice(self.ops)
        return found

    def size(self) -> float:
        ops = len(self.ops)
        if self.inputs_per_node is None:
            return float(ops ** len(self.structure.slots))
        k = self.inputs_per_node
        return float(math.prod(math.perm(j, k) * ops**k for j in self.structure.intermediate_nodes))

    def _resolve_edges(self, resolve: Resolver) -> list[CellEdge]:
        """Read the config slot by slot (source, then op); a node's sources are distinct: a
        repeated one is invalid for the narrowed choice, so the resolver redraws it."""
        edges: list[CellEdge] = []
        ops = Choice(self.ops)
        taken: dict[int, list[int]] = {}
        for slot in self.structure.slots:
            source = slot.sources[0]
            if slot.source_key is not None:
                used = taken.setdefault(slot.node, [])
                free = tuple(s for s in slot.sources if s not in used)
                source = resolve(slot.source_key, Choice(free))
                if not isinstance(source, int) or isinstance(source, bool):  # 1.0 and True are
                    raise ArchitectureError(  # "in" the choice, yet no node index
                        f"{slot.source_key}: expected an int node index, got {source!r}"
                    )
                used.append(source)
            edges.append(CellEdge(slot.node, source, resolve(slot.op_key, ops)))
        return edges

    def edges(self, config: dict[str, Any]) -> list[CellEdge]:
        """The chosen edges of a member's config (e.g. `architecture.config`), in slot order:
        what a python evaluator builds its own model from."""
        resolve = Resolver(random.Random(0), config)
        try:
            edges = self._resolve_edges(resolve)
        except ArchitectureError as exc:
            raise SpaceError(f"config.{exc}") from None
        for key, value in resolve.config.items():  # a value the resolver had to draw
            if key not in config or config[key] != value:
                raise SpaceError(
                    f"config.{key}: missing or invalid for space {self.name!r}: {config.get(key)!r}"
                )
        return edges

    def _build(self, resolve: Resolver) -> Architecture:
        edges = self._resolve_edges(resolve)
        graph = Graph()
        x = graph.add("input", (), shape=list(self.input_shape))
        x = graph.add("conv2d", (x,), filters=self.stem_channels, kernel_size=3, bias=False)
        x = graph.add("batchnorm", (x,))
        for stage in range(3):
            channels = self.stem_channels * 2**stage
            if stage:
                x = _reduction(graph, x, channels)
            history = [x] * self.cell_inputs  # the stage input stands in for missing cells
            for _ in range(self.cells_per_stage):
                x = self._cell(graph, history[-self.cell_inputs :], edges, channels)
                history.append(x)
        x = graph.add("batchnorm", (x,))
        x = graph.add("activation", (x,), fn="relu")
        x = graph.add("global_avgpool", (x,))
        graph.add("output", (x,), units=self.num_classes)
        return Architecture(graph.live_nodes(), config=resolve.config, space=self.name)

    def _cell(self, graph: Graph, inputs: list[str], edges: list[CellEdge], channels: int) -> str:
        states = list(inputs)
        for node in self.structure.intermediate_nodes:
            terms = [
                edge_op(e.op, self.custom_ops)(graph, states[e.source], channels)
                for e in edges
                if e.node == node
            ]
            present = [t for t in terms if t is not None]
            states.append(_aggregate(graph, present, self.node_aggregation, inputs[-1], channels))
        if self.cell_output == "last":
            return states[-1]
        nodes = states[self.cell_inputs :]
        return _aggregate(graph, nodes, self.cell_output, inputs[-1], channels)

    def to_nb201(self, architecture: Architecture) -> str:
        """The NAS-Bench-201 string of an architecture of this space."""
        self._require_nb201("to_nb201")
        nodes = []
        for j in range(1, self.num_nodes):
            ops = [f"{architecture.config[f'{j}<-{i}']}~{i}" for i in range(j)]
            nodes.append("|" + "|".join(ops) + "|")
        return "+".join(nodes)

    def from_nb201(self, text: str) -> Architecture:
        """Parse a NAS-Bench-201 string such as `|nor_conv_3x3~0|+|none~0|skip_connect~1|+|...|`."""
        self._require_nb201("from_nb201")
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

    def _require_nb201(self, method: str) -> None:
        if not self.nb201_form:
            raise SpaceError(
                f"{method}: NAS-Bench-201 strings describe the dense form only (inputs_per_node "
                "null, cell_inputs 1, node_aggregation 'sum', cell_output 'last'); space "
                f"{self.name!r} is not of that form"
            )

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "type": "cell",
            "name": self.name,
            "num_nodes": self.num_nodes,
            "ops": list(self.ops),
            "input_shape": list(self.input_shape),
            "stem_channels": self.stem_channels,
            "cells_per_stage": self.cells_per_stage,
            "num_classes": self.num_classes,
        }
        new = {
            "inputs_per_node": self.inputs_per_node,
            "cell_inputs": self.cell_inputs,
            "node_aggregation": self.node_aggregation,
            "cell_output": self.cell_output,
            "custom_ops": list(self.custom_ops),
        }
        # At their defaults the new fields are left out: older clients and stored specs agree.
        data.update({k: v for k, v in new.items() if v != _NEW_FIELDS[k]})
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CellSpace:
        unknown = set(data) - set(_FIELDS) - {"type"}
        if unknown:
            raise SpaceError(f"{sorted(unknown)[0]}: unknown field of a cell space")
        return cls(**{k: v for k, v in data.items() if k != "type"})


def _reduction(graph: Graph, x: str, channels: int) -> str:
    """NAS-Bench-201's ResNet block between stages: halves the size, sets the channels."""
    a = graph.relu_conv_bn(x, channels, 3, stride=2)
    a = graph.relu_conv_bn(a, channels, 3)
    shortcut = graph.add("avgpool", (x,), pool_size=2, stride=2)
    shortcut = graph.add("conv2d", (shortcut,), filters=channels, kernel_size=1, bias=False)
    return graph.add("add", (a, shortcut))


def _aggregate(graph: Graph, terms: list[str], how: str, like: str, channels: int) -> str:
    """Sum or concatenate `terms` (concat: back to `channels` by ReLU-conv1x1-BN); a single
    term is itself, none at all is a zero shaped as `like`."""
    if not terms:
        return graph.add("zero", (like,))
    if len(terms) == 1:
        return terms[0]
    if how == "sum":
        return graph.add("add", tuple(terms))
    return graph.relu_conv_bn(graph.add("concat", tuple(terms)), channels, 1)


def _positive(field: str, value: Any, minimum: int = 1) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise SpaceError(f"{field}: expected an int >= {minimum}, got {value!r}")
    return value


def _one_of(field: str, value: Any, options: tuple[str, ...]) -> str:
    if value not in options:
        raise SpaceError(f"{field}: expected one of {list(options)}, got {value!r}")
    return str(value)


def _custom_ops(value: Any) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, list | tuple):
        raise SpaceError(f"custom_ops: expected a list of op names, got {value!r}")
    for name in value:
        if not isinstance(name, str) or CELL_OP_NAME.fullmatch(name) is None:
            raise SpaceError(
                f"custom_ops: {name!r} is not an identifier of up to 64 characters "
                "(letters, digits, '_')"
            )
        if name in BUILTIN_OPS:
            raise SpaceError(f"custom_ops: {name!r} is a built-in op; give yours another name")
    if len(set(value)) != len(value):
        raise SpaceError(f"custom_ops: repeated names in {list(value)}")
    return tuple(value)


def _ops(value: Any, custom_ops: tuple[str, ...]) -> tuple[str, ...]:
    ops = () if isinstance(value, str) or not isinstance(value, list | tuple) else tuple(value)
    known = set(BUILTIN_OPS) | set(custom_ops)
    unknown = [op for op in ops if not isinstance(op, str) or op not in known]
    if not ops or unknown:
        raise SpaceError(
            f"ops: expected a non-empty subset of the built-in ops {list(BUILTIN_OPS)} and of "
            f"custom_ops {list(custom_ops)}, got {value!r}"
            + (f" (unknown: {unknown}; declare your own ops in custom_ops)" if unknown else "")
        )
    return ops


def _inputs_per_node(value: Any, cell_inputs: int) -> int | None:
    if value is None:
        return None
    k = _positive("inputs_per_node", value)
    if k > cell_inputs:
        raise SpaceError(
            f"inputs_per_node: node {cell_inputs}, the first computed one, has only "
            f"{cell_inputs} earlier node(s) (the cell inputs) to pick {k} distinct inputs from"
        )
    return k


__all__ = [
    "CELL_OUTPUTS",
    "DARTS_OPS",
    "NB201_OPS",
    "NODE_AGGREGATIONS",
    "CellEdge",
    "CellSpace",
    "CellStructure",
    "InputSlot",
    "edge_keys",
]
