"""Architecture -> `torch.nn.Module`.

The module is built from the same per-node description (`layer_steps`) the source export
prints (`morphml.torch_source`), so the exported code builds exactly the model trained here.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from morphml.architecture import Architecture, Node
from morphml.errors import ArchitectureError
from morphml.ops import CELL_OP_NAME
from morphml.torch_source import Step, export_source, layer_names, layer_steps

__all__ = [
    "DagModule",
    "Step",
    "build_module",
    "export_source",
    "layer_names",
    "layer_steps",
    "register_cell_op",
]

# User-defined cell ops (a cell space's `custom_ops`) that this process can build: name ->
# factory(channels) returning a module that keeps a (batch, channels, H, W) shape.
CellOpFactory = Callable[[int], nn.Module]
_CELL_OPS: dict[str, CellOpFactory] = {}


def register_cell_op(name: str, factory: CellOpFactory) -> None:
    """Let `to_module()` build the user-defined cell op `name` with `factory(channels)`.

    Registered in the process that builds modules (a worker's evaluator); the server never
    needs it, as a space names its custom ops in `custom_ops`.
    """
    if not isinstance(name, str) or CELL_OP_NAME.fullmatch(name) is None:
        raise ValueError(f"name: expected an identifier of up to 64 characters, got {name!r}")
    if not callable(factory):
        raise ValueError(f"factory: expected a callable (channels) -> nn.Module, got {factory!r}")
    _CELL_OPS[name] = factory


def _make(steps: list[Step]) -> nn.Module:
    layers = [getattr(nn, name)(**kwargs) for name, kwargs in steps]
    return layers[0] if len(layers) == 1 else nn.Sequential(*layers)


class DagModule(nn.Module):
    """Runs an architecture's nodes in topological order.

    Layers are attributes named as in the exported source, so a state dict trained here loads
    into the exported class unchanged.
    """

    def __init__(self, architecture: Architecture) -> None:
        super().__init__()
        self.order = list(architecture.order)
        self.nodes = {nid: architecture.nodes[nid] for nid in self.order}
        self.names = layer_names(architecture)
        for nid in self.order:
            node, shapes = self.nodes[nid], architecture.input_shapes(nid)
            if node.op == "cell_op":
                self.add_module(self.names[nid], _user_op(node, shapes[0][0]))
            elif steps := layer_steps(node, shapes):
                self.add_module(self.names[nid], _make(steps))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        values: dict[str, torch.Tensor] = {}
        for nid in self.order:
            node = self.nodes[nid]
            args = [values[source] for source in node.inputs]
            if node.op == "input":
                values[nid] = x
            elif node.op == "add":
                total = args[0]
                for arg in args[1:]:  # left to right, as the exported `a + b + c`
                    total = total + arg
                values[nid] = total
            elif node.op == "zero":
                values[nid] = torch.zeros_like(args[0])
            elif node.op == "concat":
                values[nid] = torch.cat(args, dim=1)
            else:
                values[nid] = getattr(self, self.names[nid])(args[0])
        return values[self.order[-1]]


def _user_op(node: Node, channels: int) -> nn.Module:
    name = node.params["name"]
    factory = _CELL_OPS.get(name)
    if factory is None:
        raise ArchitectureError(
            f"node {node.id!r}: user-defined cell op {name!r} has no PyTorch factory; call "
            f"morphml.torch_build.register_cell_op({name!r}, factory) where the model is built, "
            "or evaluate the space with a python evaluator"
        )
    module = factory(channels)
    if not isinstance(module, nn.Module):
        raise ArchitectureError(
            f"cell op {name!r}: its factory returned {type(module).__name__}, not an nn.Module"
        )
    return module


def build_module(architecture: Architecture) -> nn.Module:
    return DagModule(architecture)
