"""`Supernet`: CellSpace's macro network with every cell edge holding all of the space's ops.

The layers mirror `CellSpace._build` (conv stem, three stages of cells joined by ResNet
reduction blocks, BN-ReLU, global pooling, linear), so a sub-network picked from it is the
architecture `space.build(config)` describes, with weights shared across all sub-networks.
The cells share one genotype, as CellSpace's do: DARTS weights every edge by one row of
`alpha` (a softmax over the ops) in every cell, and a single path is one op index per edge.

Edge ops use BatchNorm without affine parameters, as DARTS's search cells do: a learned scale
after each op would let the weights undo whatever the architecture weights decide.
"""

from __future__ import annotations

import torch
from torch import nn

from morphml.space.cell import CellSpace, edge_keys

Path = list[int]  # one op index (into space.ops) per edge, in edge_keys order


def check_dense(space: CellSpace) -> None:
    """The supernet knows the NAS-Bench-201 dense cell; anything else is refused clearly."""
    if not isinstance(space, CellSpace):
        raise ValueError(f"space: weight sharing needs a CellSpace, got {type(space).__name__}")
    form = getattr(space, "form", getattr(space, "cell_type", "dense"))
    if form not in ("dense", "nb201"):
        raise ValueError(f"space: weight sharing supports the dense (NB201) cell, not {form!r}")
    if set(space.variables()) != set(edge_keys(space.num_nodes)):
        raise ValueError("space: weight sharing supports the dense (NB201) cell form only")


class ReLUConvBN(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, affine: bool) -> None:
        super().__init__(
            nn.ReLU(),
            nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, bias=False),
            nn.BatchNorm2d(c_out, affine=affine),
        )


def make_op(name: str, channels: int) -> nn.Module | None:
    """One candidate op of an edge; None for "none" (the edge contributes nothing)."""
    if name == "none":
        return None
    if name == "skip_connect":
        return nn.Identity()
    if name == "avg_pool_3x3":
        return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
    kernel = 1 if name == "nor_conv_1x1" else 3
    return ReLUConvBN(channels, channels, kernel, 1, affine=False)


class Edge(nn.Module):
    """All ops of one edge; `mixed` weights them (DARTS), `single` runs one (a path)."""

    def __init__(self, ops: tuple[str, ...], channels: int) -> None:
        super().__init__()
        made = [make_op(name, channels) for name in ops]
        self.present = [i for i, op in enumerate(made) if op is not None]
        self.ops = nn.ModuleList([op for op in made if op is not None])

    def mixed(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor | None:
        # "none" is the zero op: its weight multiplies zeros, so it is left out of the sum
        # (its weight still takes its share of the softmax).
        terms = [weights[i] * op(x) for i, op in zip(self.present, self.ops, strict=True)]
        return _sum(terms)

    def single(self, x: torch.Tensor, index: int) -> torch.Tensor | None:
        if index not in self.present:
            return None
        return self.ops[self.present.index(index)](x)  # type: ignore[no-any-return]


class Cell(nn.Module):
    def __init__(self, ops: tuple[str, ...], num_nodes: int, channels: int) -> None:
        super().__init__()
        self.num_nodes = num_nodes
        self.edges = nn.ModuleList([Edge(ops, channels) for _ in edge_keys(num_nodes)])

    def forward(
        self, x: torch.Tensor, weights: torch.Tensor | None, path: Path | None
    ) -> torch.Tensor:
        states, e = [x], 0
        for j in range(1, self.num_nodes):
            terms = []
            for i in range(j):
                edge: Edge = self.edges[e]  # type: ignore[assignment]
                if weights is not None:
                    terms.append(edge.mixed(states[i], weights[e]))
                else:
                    assert path is not None
                    terms.append(edge.single(states[i], path[e]))
                e += 1
            total = _sum([t for t in terms if t is not None])
            # A node with no input is zero, as CellSpace's "zero" node.
            states.append(torch.zeros_like(x) if total is None else total)
        return states[-1]


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
        check_dense(space)
        self.ops = space.ops
        self.num_edges = len(edge_keys(space.num_nodes))
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
                self.blocks.append(Cell(space.ops, space.num_nodes, channels))
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
        for block in self.blocks:
            x = block(x, weights, path) if isinstance(block, Cell) else block(x)
        return self.classifier(self.head(x))  # type: ignore[no-any-return]


def _sum(terms: list[torch.Tensor | None]) -> torch.Tensor | None:
    present = [t for t in terms if t is not None]
    if not present:
        return None
    total = present[0]
    for term in present[1:]:
        total = total + term
    return total
