"""Architecture -> `torch.nn.Module`.

The module is built from the same per-node description (`layer_steps`) the source export
prints (`morphml.torch_source`), so the exported code builds exactly the model trained here.
"""

from __future__ import annotations

import torch
from torch import nn

from morphml.architecture import Architecture
from morphml.torch_source import Step, export_source, layer_names, layer_steps

__all__ = ["DagModule", "Step", "build_module", "export_source", "layer_names", "layer_steps"]


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
            steps = layer_steps(self.nodes[nid], architecture.input_shapes(nid))
            if steps:
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
            else:
                values[nid] = getattr(self, self.names[nid])(args[0])
        return values[self.order[-1]]


def build_module(architecture: Architecture) -> nn.Module:
    return DagModule(architecture)
