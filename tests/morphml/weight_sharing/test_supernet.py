"""The supernet mirrors CellSpace's macro network, for both the mixture and a single path."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

from morphml.space.cell import NB201_OPS, CellSpace
from morphml.weight_sharing.cells import SUPPORTED_OPS, CellLayout, check_supported, config_of
from morphml.weight_sharing.supernet import Supernet

FORMS = [
    {},
    {"cell_inputs": 2, "cell_output": "concat"},
    {"cell_inputs": 2, "cell_output": "sum", "num_nodes": 5},
    {"cell_output": "concat", "num_nodes": 3},
]


def layer_shapes(module: nn.Module) -> tuple[list[tuple[int, ...]], int]:
    """The sorted shapes of the conv and linear weights, and the number of BatchNorms."""
    shapes = sorted(
        tuple(m.weight.shape) for m in module.modules() if isinstance(m, nn.Conv2d | nn.Linear)
    )
    return shapes, sum(isinstance(m, nn.BatchNorm2d) for m in module.modules())


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("op", [op for op in SUPPORTED_OPS if op != "none"])
def test_a_one_op_supernet_has_the_layers_of_the_built_network(
    op: str, form: dict[str, Any]
) -> None:
    fields = {"num_nodes": 4, "input_shape": [1, 8, 8], "stem_channels": 4, **form}
    space = CellSpace.from_dict({**fields, "ops": [op], "cells_per_stage": 2})
    built = space.build(config_of(space, [0] * len(CellLayout(space).edges))).to_module()
    assert layer_shapes(Supernet(space)) == layer_shapes(built)


def test_one_path_has_the_built_networks_weights_but_the_edges_batchnorm_affines() -> None:
    space = CellSpace(num_nodes=3, ops=("nor_conv_3x3",), input_shape=[1, 8, 8],
                      stem_channels=4, cells_per_stage=2, num_classes=7)  # fmt: skip
    net = Supernet(space)
    weights = sum(p.numel() for p in net.weight_parameters())
    built = space.build(config_of(space, [0, 0, 0]))
    # The supernet's edge convs use BatchNorm without scale and shift (as DARTS does): one
    # (weight, bias) pair of C, 2C or 4C per edge of each cell.
    affine = sum(2 * 4 * 2**stage * 3 * 2 for stage in range(3))
    assert weights + affine == built.num_params


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 8, 8), (2, 12, 16)])
def test_the_mixture_and_every_path_give_class_logits(shape: tuple[int, int, int]) -> None:
    space = CellSpace(num_nodes=4, input_shape=list(shape), stem_channels=3, cells_per_stage=1,
                      num_classes=5)  # fmt: skip
    net = Supernet(space)
    x = torch.randn(2, *shape)
    assert net(x).shape == (2, 5)
    for op in range(len(NB201_OPS)):  # "none" everywhere too: the cells output zeros
        assert net(x, [op] * 6).shape == (2, 5)


def test_only_sum_aggregated_cells_of_built_in_ops_are_taken() -> None:
    with pytest.raises(ValueError, match=r"^space:"):
        check_supported("nas-bench-201")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^space.node_aggregation:"):
        check_supported(CellSpace(node_aggregation="concat"))
    with pytest.raises(ValueError, match=r"^space.ops:.*mine"):
        check_supported(CellSpace(ops=("none", "mine"), custom_ops=["mine"]))


def test_input_selection_paths_are_configs_and_back() -> None:
    """A DARTS-style cell: two cell inputs, each node picks two earlier nodes."""
    space = CellSpace(num_nodes=6, cell_inputs=2, inputs_per_node=2, cell_output="concat",
                      ops=("none", "skip_connect", "sep_conv_3x3", "max_pool_3x3"),
                      input_shape=[1, 8, 8], stem_channels=4, cells_per_stage=1)  # fmt: skip
    layout, net = CellLayout(space), Supernet(space)
    assert len(layout.edges) == 2 + 3 + 4 + 5  # an edge from every earlier node, as DARTS
    x = torch.randn(2, 1, 8, 8)
    assert net(x).shape == (2, 10)
    for seed in range(20):
        architecture = space.sample(seed)
        path = layout.from_config(architecture.config)
        assert sum(op != -1 for op in path) == 2 * 4  # two picks per intermediate node
        assert space.build(layout.to_config(path)).hash == architecture.hash
        assert net(x, path).shape == (2, 10)
