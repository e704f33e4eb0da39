"""Architecture -> readable standalone PyTorch source, without importing torch.

The description of each node (`layer_steps`: the nn classes and keyword arguments it needs) lives
here; `morphml.torch_build` builds the module from the same steps, so the exported code builds
exactly the model that `to_module()` trains. No torch import: the control plane (which never
imports torch) shows an architecture's source in its dashboard.
"""

from __future__ import annotations

from typing import Any

from morphml.architecture import Architecture, Node
from morphml.ops import Shape, conv_padding

_ACTIVATIONS = {
    "relu": "ReLU",
    "gelu": "GELU",
    "silu": "SiLU",
    "tanh": "Tanh",
    "sigmoid": "Sigmoid",
    "identity": "Identity",
}

Step = tuple[str, dict[str, Any]]  # (torch.nn class name, keyword arguments)


def layer_steps(node: Node, in_shapes: list[Shape]) -> list[Step]:
    """The nn layers, in order, that compute `node`; empty for input/add/zero/concat and for a
    user's `cell_op` (its module comes from the user: `torch_build.register_cell_op`)."""
    p, shape = node.params, in_shapes[0] if in_shapes else ()
    if node.op == "conv2d":
        args = {
            "in_channels": shape[0],
            "out_channels": p["filters"],
            "kernel_size": p["kernel_size"],
            "stride": p["stride"],
            "padding": conv_padding(p),
            "bias": p["bias"],
        }
        # Only when set: the source of every architecture from before they existed is unchanged.
        args.update({k: p[k] for k in ("groups", "dilation") if k in p})
        return [("Conv2d", args)]
    if node.op == "batchnorm":
        return [("BatchNorm2d" if len(shape) == 3 else "BatchNorm1d", {"num_features": shape[0]})]
    if node.op == "activation":
        return [(_ACTIVATIONS[p["fn"]], {})]
    if node.op in ("maxpool", "avgpool"):
        args = {"kernel_size": p["pool_size"], "stride": p["stride"] or p["pool_size"]}
        if node.op == "avgpool":
            # Padding must not dilute averages (as NAS-Bench-201's avg_pool_3x3).
            return [("AvgPool2d", {**args, "padding": p["padding"], "count_include_pad": False})]
        return [("MaxPool2d", {**args, "padding": p["padding"]})]
    if node.op in ("global_avgpool", "global_maxpool"):
        pool = "AdaptiveAvgPool2d" if node.op == "global_avgpool" else "AdaptiveMaxPool2d"
        return [(pool, {"output_size": 1}), ("Flatten", {})]
    if node.op == "dropout":
        return [("Dropout", {"p": p["rate"]})]
    if node.op == "flatten":
        return [("Flatten", {})]
    if node.op in ("dense", "output"):
        return [("Linear", {"in_features": shape[0], "out_features": p["units"]})]
    return []


def layer_names(architecture: Architecture) -> dict[str, str]:
    """Attribute name of each node's layer, shared with the export so state dicts match."""
    return {nid: f"{architecture.nodes[nid].op}_{i}" for i, nid in enumerate(architecture.order)}


def _expression(steps: list[Step]) -> str:
    def one(name: str, kwargs: dict[str, Any]) -> str:
        return f"nn.{name}({', '.join(f'{k}={v!r}' for k, v in kwargs.items())})"

    if len(steps) == 1:
        return one(*steps[0])
    return "nn.Sequential(" + ", ".join(one(*step) for step in steps) + ")"


def export_source(architecture: Architecture, class_name: str = "Net") -> str:
    """Standalone source of a module class equal to `to_module()` (same layers, same order)."""
    names = layer_names(architecture)
    variables = {
        nid: "x" if architecture.nodes[nid].op == "input" else f"h{i}"
        for i, nid in enumerate(architecture.order)
    }
    init, forward = [], []
    for nid in architecture.order:
        node = architecture.nodes[nid]
        args = [variables[source] for source in node.inputs]
        steps = layer_steps(node, architecture.input_shapes(nid))
        if steps:
            init.append(f"        self.{names[nid]} = {_expression(steps)}")
            forward.append(f"        {variables[nid]} = self.{names[nid]}({args[0]})")
        elif node.op == "add":
            forward.append(f"        {variables[nid]} = {' + '.join(args)}")
        elif node.op == "zero":
            forward.append(f"        {variables[nid]} = torch.zeros_like({args[0]})")
        elif node.op == "concat":
            forward.append(f"        {variables[nid]} = torch.cat([{', '.join(args)}], dim=1)")
        elif node.op == "cell_op":
            channels = architecture.input_shapes(nid)[0][0]
            init.append(f"        self.{names[nid]} = cell_op({node.params['name']!r}, {channels})")
            forward.append(f"        {variables[nid]} = self.{names[nid]}({args[0]})")
    used = sorted({n.params["name"] for n in architecture.nodes.values() if n.op == "cell_op"})
    batch_shape = ", ".join(str(d) for d in (2, *architecture.input_shape))
    return _TEMPLATE.format(
        hash=architecture.hash,
        params=architecture.num_params,
        flops=architecture.flops,
        class_name=class_name,
        init="\n".join(init) or "        pass",
        forward="\n".join(forward),
        output=variables[architecture.output_id],
        batch_shape=batch_shape,
        cell_ops=_CELL_OPS_TEMPLATE.format(names=", ".join(used)) if used else "",
    )


_TEMPLATE = '''"""A MorphML architecture exported as PyTorch code.

Architecture hash {hash}: {params:,} parameters, {flops:,} multiply-accumulates per example.
"""

import torch
from torch import nn
{cell_ops}

class {class_name}(nn.Module):
    def __init__(self) -> None:
        super().__init__()
{init}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
{forward}
        return {output}


if __name__ == "__main__":
    model = {class_name}()
    print(model(torch.zeros({batch_shape})).shape)
'''

# Only in the source of architectures with user-defined cell ops, whose code MorphML never sees.
_CELL_OPS_TEMPLATE = '''

def cell_op(name: str, channels: int) -> nn.Module:
    """Your cell ops ({names}): return the module for `name`, mapping a (batch, channels, H, W)
    tensor to the same shape (the factory registered with morphml.torch_build.register_cell_op).
    """
    raise NotImplementedError(f"user-defined cell op {{name!r}}: put its module here")
'''
