"""Architectures: a validated DAG of typed nodes with concrete parameters; shapes, size, hash."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from morphml.errors import ArchitectureError
from morphml.ops import (
    CHANNELWISE_OPS,
    COMMUTATIVE_OPS,
    OPS,
    Params,
    Shape,
    absorbs_channel_order,
    normalize_params,
)


@dataclass(frozen=True)
class Node:
    """One operation of the DAG; `inputs` name earlier nodes, in argument order."""

    id: str
    op: str
    params: Params = field(default_factory=dict)
    inputs: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "op": self.op, "params": self.params, "inputs": list(self.inputs)}


class Architecture:
    """A sampled point of a search space, validated on construction.

    `config` holds the decision variables the space chose (what optimizers mutate); an architecture
    built by hand has an empty one. Equality is by canonical hash: the hash is independent of node
    ids and of the order nodes were listed in, but sensitive to the order of layers.
    """

    def __init__(
        self, nodes: Iterable[Node], config: dict[str, Any] | None = None, space: str = ""
    ) -> None:
        self.nodes: dict[str, Node] = {}
        for index, node in enumerate(nodes):
            where = f"nodes[{index}]"
            if node.id in self.nodes:
                raise ArchitectureError(f"{where}.id: duplicate node id {node.id!r}")
            params = normalize_params(node.op, node.params, where)
            self.nodes[node.id] = Node(node.id, node.op, params, tuple(node.inputs))
        self.config: dict[str, Any] = dict(config or {})
        self.space = space
        self.order: list[str] = self._topological_order()
        self.shapes: dict[str, Shape] = self._infer_shapes()

    @property
    def input_id(self) -> str:
        return self.order[0]

    @property
    def output_id(self) -> str:
        return self.order[-1]

    @property
    def input_shape(self) -> Shape:
        return self.shapes[self.input_id]

    @property
    def output_shape(self) -> Shape:
        return self.shapes[self.output_id]

    def _topological_order(self) -> list[str]:
        self._check_endpoints()
        indegree = {nid: len(node.inputs) for nid, node in self.nodes.items()}
        consumers: dict[str, list[str]] = {nid: [] for nid in self.nodes}
        for nid, node in self.nodes.items():
            for source in node.inputs:
                if source not in self.nodes:
                    raise ArchitectureError(f"node {nid!r}: input {source!r} does not exist")
                consumers[source].append(nid)
        ready = [nid for nid, degree in indegree.items() if degree == 0]
        order: list[str] = []
        while ready:
            nid = ready.pop(0)
            order.append(nid)
            for consumer in consumers[nid]:
                indegree[consumer] -= 1
                if indegree[consumer] == 0:
                    ready.append(consumer)
        if len(order) != len(self.nodes):
            stuck = sorted(set(self.nodes) - set(order))
            raise ArchitectureError(f"the graph has a cycle through {stuck}")
        self._check_reaches_output(consumers)
        return order

    def _check_endpoints(self) -> None:
        inputs = [n.id for n in self.nodes.values() if n.op == "input"]
        outputs = [n.id for n in self.nodes.values() if n.op == "output"]
        if len(inputs) != 1:
            raise ArchitectureError(f"an architecture needs exactly one input node, has {inputs}")
        if len(outputs) != 1:
            raise ArchitectureError(f"an architecture needs exactly one output node, has {outputs}")

    def _check_reaches_output(self, consumers: dict[str, list[str]]) -> None:
        for nid, node in self.nodes.items():
            if node.op != "output" and not consumers[nid]:
                raise ArchitectureError(f"node {nid!r} ({node.op}) does not reach the output")

    def _infer_shapes(self) -> dict[str, Shape]:
        shapes: dict[str, Shape] = {}
        for nid in self.order:
            node = self.nodes[nid]
            spec = OPS[node.op]
            if not spec.min_inputs <= len(node.inputs) <= spec.max_inputs:
                raise ArchitectureError(
                    f"node {nid!r}: {node.op} takes {spec.min_inputs}..{spec.max_inputs} inputs, "
                    f"got {len(node.inputs)}"
                )
            in_shapes = [shapes[source] for source in node.inputs]
            try:
                shapes[nid] = spec.shape(in_shapes, node.params)
            except ArchitectureError as exc:
                raise ArchitectureError(f"node {nid!r}: {exc}") from None
        return shapes

    def input_shapes(self, nid: str) -> list[Shape]:
        return [self.shapes[source] for source in self.nodes[nid].inputs]

    @cached_property
    def num_params(self) -> int:
        """Trainable parameters, equal to the built torch module's count."""
        return sum(
            OPS[n.op].num_params(self.input_shapes(n.id), n.params) for n in self.nodes.values()
        )

    @cached_property
    def flops(self) -> int:
        """Multiply-accumulates of one forward pass for a single example."""
        return sum(
            OPS[n.op].flops(self.input_shapes(n.id), n.params, self.shapes[n.id])
            for n in self.nodes.values()
        )

    @cached_property
    def hash(self) -> str:
        """Canonical hash: a Merkle hash of the DAG from the output back, ids ignored.

        The inputs of `add` are unordered. So are those of a `concat` whose channel order does
        not matter: when every path from it reaches a channel-mixing layer (an ungrouped conv,
        a dense layer) through per-channel ops only, its inputs listed in another order build
        the same network up to which weights are which, so both orders get one hash.
        """
        has_concat = any(node.op == "concat" for node in self.nodes.values())
        order_free = self._channel_order_free() if has_concat else set()
        digests: dict[str, str] = {}
        for nid in self.order:
            node = self.nodes[nid]
            parents = [digests[source] for source in node.inputs]
            if node.op in COMMUTATIVE_OPS or (node.op == "concat" and nid in order_free):
                parents.sort()
            payload = json.dumps([node.op, node.params, parents], sort_keys=True)
            digests[nid] = hashlib.sha256(payload.encode()).hexdigest()
        return digests[self.output_id]

    def _channel_order_free(self) -> set[str]:
        """Nodes whose output channels may be permuted without changing what the network can
        compute: every consumer absorbs the permutation or passes it on per channel to such."""
        consumers: dict[str, list[Node]] = {nid: [] for nid in self.nodes}
        for node in self.nodes.values():
            for source in node.inputs:
                consumers[source].append(node)
        free: set[str] = set()
        for nid in reversed(self.order):
            users = consumers[nid]
            if users and all(
                absorbs_channel_order(user.op, user.params)
                or (user.op in CHANNELWISE_OPS and user.id in free)
                for user in users
            ):
                free.add(nid)
        return free

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Architecture) and self.hash == other.hash

    def __hash__(self) -> int:
        return hash(self.hash)

    def __repr__(self) -> str:
        ops = ",".join(self.nodes[nid].op for nid in self.order)
        return f"Architecture({self.hash[:12]}, {len(self.nodes)} nodes: {ops[:80]})"

    def to_dict(self) -> dict[str, Any]:
        return {
            "space": self.space,
            "nodes": [self.nodes[nid].to_dict() for nid in self.order],
            "config": self.config,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Architecture:
        if not isinstance(data, dict) or not isinstance(data.get("nodes"), list):
            raise ArchitectureError("an architecture is an object with a 'nodes' list")
        nodes = [_node_from_dict(index, raw) for index, raw in enumerate(data["nodes"])]
        config = data.get("config") or {}
        if not isinstance(config, dict):
            raise ArchitectureError("config: expected an object")
        return cls(nodes, config=config, space=str(data.get("space") or ""))

    @classmethod
    def from_json(cls, text: str) -> Architecture:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ArchitectureError(f"not valid JSON: {exc}") from None
        return cls.from_dict(data)

    def to_module(self) -> Any:
        """A `torch.nn.Module` computing this architecture (imports torch)."""
        from morphml.torch_build import build_module

        return build_module(self)

    def to_pytorch_source(self, class_name: str = "Net") -> str:
        """Readable, standalone PyTorch source code of the model class."""
        from morphml.torch_source import export_source

        return export_source(self, class_name)


def _node_from_dict(index: int, raw: Any) -> Node:
    where = f"nodes[{index}]"
    if not isinstance(raw, dict):
        raise ArchitectureError(f"{where}: expected an object")
    for key in ("id", "op"):
        if not isinstance(raw.get(key), str):
            raise ArchitectureError(f"{where}.{key}: expected a string")
    params, inputs = raw.get("params") or {}, raw.get("inputs") or []
    if not isinstance(params, dict):
        raise ArchitectureError(f"{where}.params: expected an object")
    if not isinstance(inputs, list) or not all(isinstance(i, str) for i in inputs):
        raise ArchitectureError(f"{where}.inputs: expected a list of node ids")
    return Node(raw["id"], raw["op"], params, tuple(inputs))
