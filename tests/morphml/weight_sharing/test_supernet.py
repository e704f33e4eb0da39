"""The supernet mirrors CellSpace's macro network, for both the mixture and a single path."""

from __future__ import annotations

import pytest
import torch

from morphml.space.cell import NB201_OPS, CellSpace
from morphml.weight_sharing.supernet import Supernet, check_dense
from morphml.weight_sharing.training import config_of


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


def test_only_dense_cell_spaces_are_taken() -> None:
    with pytest.raises(ValueError, match=r"^space:"):
        check_dense("nas-bench-201")  # type: ignore[arg-type]
