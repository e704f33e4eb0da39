"""`Supernet`: CellSpace's macro network with every cell edge holding all of the space's ops.

The layers mirror `CellSpace._build` (conv stem, three stages of cells joined by ResNet
reduction blocks, BN-ReLU, global pooling, linear), so a sub-network picked from it is the
architecture `space.build(config)` describes, with weights shared across all sub-networks.
The cells share one genotype, as CellSpace's do: DARTS weights every edge by one row of
`alpha` (a softmax over the ops) in every cell, and a single path is one op index per edge.

Supported: the dense form (`inputs_per_node` null) and input selection (`inputs_per_node` k:
the supernet then holds an edge from every earlier node, as DARTS's does, and a path keeps k of
them per node; morphml.weight_sharing.cells), any `cell_inputs`, `cell_output` "last", "sum" or
"concat", node aggregation "sum", and every built-in op (NAS-Bench-201's and DARTS's). Refused
with a ValueError: "concat" node aggregation (the width of its 1x1 conv depends on how many of a
node's edges are present, so one shared conv cannot mirror every path) and user-defined ops
(the library cannot build them).

Edge ops use BatchNorm without affine parameters, as DARTS's search cells do: a learned scale
after each op would let the weights undo whatever the architecture weights decide.
"""

from __future__ import annotations

import torch
from torch import nn

from morphml.space.cell import CellSpace
from morphml.weight_sharing.cells import CellLayout, Path


class ReLUConvBN(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, affine: bool) -> None:
        super().__init__(
            nn.ReLU(),
            nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, bias=False),
            nn.BatchNorm2d(c_out, affine=affine),
        )


def dil_conv(channels: int, kernel: int, dilation: int) -> nn.Sequential:
    """DARTS's DilConv: ReLU, a depthwise (dilated) conv, a pointwise conv, BN."""
    return nn.Sequential(
        nn.ReLU(),
        nn.Conv2d(channels, channels, kernel, padding=dilation * (kernel // 2),
                  dilation=dilation, groups=channels, bias=False),
        nn.Conv2d(channels, channels, 1, bias=False),
        nn.BatchNorm2d(channels, affine=False),
    )  # fmt: skip


def make_op(name: str, channels: int) -> nn.Module | None:
    """One candidate op of an edge, as morphml/space/cell_ops.py builds it; None for "none"
    (the edge contributes nothing)."""
    if name == "none":
        return None
    if name == "skip_connect":
        return nn.Identity()
    if name == "avg_pool_3x3":
        return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
    if name == "max_pool_3x3":
        return nn.MaxPool2d(3, stride=1, padding=1)
    if name.startswith("sep_conv_"):
        kernel = int(name[-1])
        return nn.Sequential(dil_conv(channels, kernel, 1), dil_conv(channels, kernel, 1))
    if name.startswith("dil_conv_"):
        return dil_conv(channels, int(name[-1]), 2)
    if name in ("nor_conv_1x1", "nor_conv_3x3"):
        return ReLUConvBN(channels, channels, int(name[-1]), 1, affine=False)
    raise ValueError(f"space.ops: weight sharing cannot build op {name!r}")


class Edge(nn.Module):
    """All ops of one edge; `mixed` weights them (DARTS), `single` runs one (a path)."""

    def __init__(self, ops: tuple[str, ...], channels: int) -> None:
        super().__init__()
        made = [make_op(name, channels) for name in ops]
        self.present = [i for i, op in enumerate(made) if op is not None]
        self.ops = nn.ModuleList([op for op in made if op is not None])

    def mixed(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor | None:
        # "none" is the zero op: its weight multiplies zeros, so it is left out of the sum
        # (its weight still takes its share of the softmax). A path's absent edge (index -1)
        # is in no op's place, so `single` gives None for it too.
        terms = [weights[i] * op(x) for i, op in zip(self.present, self.ops, strict=True)]
        return _sum(terms)

    def single(self, x: torch.Tensor, index: int) -> torch.Tensor | None:
        if index not in self.present:
            return None
        return self.ops[self.present.index(index)](x)  # type: ignore[no-any-return]


class Cell(nn.Module):
    """One cell: dense edges into each intermediate node, summed; the cell's output is the last
    node, or the sum or concatenation (then ReLU-conv1x1-BN) of all intermediate nodes."""

    def __init__(self, layout: CellLayout, channels: int) -> None:
        super().__init__()
        self.links = layout.edges
        self.inputs = layout.cell_inputs
        self.num_nodes = layout.space.num_nodes
        self.output = getattr(layout.space, "cell_output", "last")
        self.edges = nn.ModuleList([Edge(layout.ops, channels) for _ in self.links])
        width = (self.num_nodes - self.inputs) * channels
        concat = self.output == "concat" and width > channels
        self.merge = ReLUConvBN(width, channels, 1, 1, affine=True) if concat else None

    def forward(
        self, inputs: list[torch.Tensor], weights: torch.Tensor | None, path: Path | None
    ) -> torch.Tensor:
        states = list(inputs)
        for node in range(self.inputs, self.num_nodes):
            terms = []
            for e, (into, source) in enumerate(self.links):
                if into != node:
                    continue
                edge: Edge = self.edges[e]  # type: ignore[assignment]
                if weights is not None:
                    terms.append(edge.mixed(states[source], weights[e]))
                else:
                    assert path is not None
                    terms.append(edge.single(states[source], path[e]))
            total = _sum(terms)
            # A node with no input is zero, as CellSpace's "zero" node.
            states.append(torch.zeros_like(inputs[-1]) if total is None else total)
        nodes = states[self.inputs :]
        if self.output == "last" or len(nodes) == 1:
            return nodes[-1]
        if self.merge is None:
            return _sum(list(nodes))  # type: ignore[return-value]
        return self.merge(torch.cat(nodes, dim=1))  # type: ignore[no-any-return]


class Reduction(nn.Module):
    """The ResNet block between stages (stride 2, channels doubled), as in CellSpace."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.a = ReLUConvBN(c_in, c_out, 3, 2, affine=True)
        self.b = ReLUConvBN(c_out, c_out, 3, 1, affine=True)
        self.shortcut = nn.Sequential(
            nn.AvgPool2d(2, stride=2, count_include_pad=False),
            nn.Conv2d(c_in, c_out, 1, bias=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(self.a(x)) + self.shortcut(x)  # type: ignore[no-any-return]


class Supernet(nn.Module):
    """The weight-sharing network of a dense CellSpace, with DARTS's `alpha` beside it."""

    def __init__(self, space: CellSpace) -> None:
        super().__init__()
        self.layout = CellLayout(space)
        self.ops = space.ops
        self.num_edges = len(self.layout.edges)
        self.cell_inputs = self.layout.cell_inputs
        c = space.stem_channels
        self.stem = nn.Sequential(
            nn.Conv2d(space.input_shape[0], c, 3, padding=1, bias=False), nn.BatchNorm2d(c)
        )
        self.blocks = nn.ModuleList()
        for stage in range(3):
            channels = c * 2**stage
            if stage:
                self.blocks.append(Reduction(channels // 2, channels))
            for _ in range(space.cells_per_stage):
                self.blocks.append(Cell(self.layout, channels))
        self.head = nn.Sequential(
            nn.BatchNorm2d(4 * c), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten()
        )
        self.classifier = nn.Linear(4 * c, space.num_classes)
        # Small random logits, as DARTS: an exact tie would make the first argmax arbitrary.
        self.alpha = nn.Parameter(1e-3 * torch.randn(self.num_edges, len(self.ops)))

    def weight_parameters(self) -> list[nn.Parameter]:
        """The network's own weights: everything but `alpha`."""
        return [p for name, p in self.named_parameters() if name != "alpha"]

    def forward(self, x: torch.Tensor, path: Path | None = None) -> torch.Tensor:
        """The DARTS mixture without `path`; the single-path sub-network with one."""
        weights = torch.softmax(self.alpha, dim=-1) if path is None else None
        x = self.stem(x)
        history = [x] * self.cell_inputs  # the stage's input stands in for missing cells
        for block in self.blocks:
            if isinstance(block, Cell):
                x = block(history[-self.cell_inputs :], weights, path)
                history.append(x)
            else:
                x = block(x)
                history = [x] * self.cell_inputs  # a new stage
        return self.classifier(self.head(x))  # type: ignore[no-any-return]


def _sum(terms: list[torch.Tensor | None] | list[torch.Tensor]) -> torch.Tensor | None:
    present = [t for t in terms if t is not None]
    if not present:
        return None
    total = present[0]
    for term in present[1:]:
        total = total + term
    return total
