"""The new cell forms and primitives in PyTorch: built modules run, match the exported source and
the architecture's own parameter and FLOP counts; user ops need a registered factory."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import torch
from torch import nn

from morphml import Architecture, CellSpace, torch_build
from morphml.architecture import Node
from morphml.errors import ArchitectureError
from morphml.space import DARTS_OPS

TINY: dict[str, Any] = {
    "input_shape": [1, 8, 8],
    "stem_channels": 4,
    "cells_per_stage": 1,
    "num_classes": 3,
}
DARTS: dict[str, Any] = {
    "num_nodes": 6,
    "cell_inputs": 2,
    "inputs_per_node": 2,
    "ops": list(DARTS_OPS),
}
SPACES = {
    "darts": CellSpace(name="darts", cell_output="concat", **DARTS, **TINY),
    "darts-concat-nodes": CellSpace(
        name="d2", node_aggregation="concat", cell_output="sum", **{**DARTS, **TINY}
    ),
    "darts-two-cells": CellSpace(
        name="d3", cell_output="concat", **{**DARTS, **TINY, "cells_per_stage": 2}
    ),
    "dense-two-inputs": CellSpace(
        name="d4", num_nodes=4, cell_inputs=2, ops=["none", "sep_conv_3x3", "dil_conv_5x5"], **TINY
    ),
}


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    """Tiny models: a second intra-op thread only spins on a shared machine (100x slower)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _run(module: nn.Module, shape: list[int]) -> torch.Tensor:
    module.eval()
    with torch.no_grad():
        out: torch.Tensor = module(
            torch.randn(2, *shape, generator=torch.Generator().manual_seed(0))
        )
    return out


@pytest.mark.parametrize("name", sorted(SPACES))
def test_members_build_run_and_count_their_parameters(name: str) -> None:
    space = SPACES[name]
    for seed in range(3):
        architecture = space.sample(seed)
        module = architecture.to_module()
        assert _run(module, TINY["input_shape"]).shape == (2, 3)
        assert sum(p.numel() for p in module.parameters()) == architecture.num_params


def test_exported_source_builds_the_same_model() -> None:
    architecture = SPACES["darts-two-cells"].sample(4)
    ops = {n.op for n in architecture.nodes.values()}
    assert "concat" in ops
    assert any(n.params.get("groups", 1) > 1 for n in architecture.nodes.values())
    namespace: dict[str, Any] = {}
    exec(architecture.to_pytorch_source(), namespace)
    exported, built = namespace["Net"](), architecture.to_module()
    exported.load_state_dict(built.state_dict())
    assert torch.equal(_run(exported, TINY["input_shape"]), _run(built, TINY["input_shape"]))


def _conv_net(**conv: Any) -> Architecture:
    return Architecture(
        [
            Node("x", "input", {"shape": [4, 9, 9]}),
            Node("c", "conv2d", {"filters": 8, "kernel_size": 3, "bias": False, **conv}, ("x",)),
            Node("p", "global_avgpool", {}, ("c",)),
            Node("o", "output", {"units": 2}, ("p",)),
        ]
    )


@pytest.mark.parametrize(
    ("conv", "spatial", "weights", "macs"),
    [
        ({}, 9, 4 * 9 * 8, 4 * 9 * 8 * 81),
        ({"groups": 4}, 9, 1 * 9 * 8, 1 * 9 * 8 * 81),
        ({"dilation": 2}, 9, 4 * 9 * 8, 4 * 9 * 8 * 81),
        ({"dilation": 3, "stride": 2}, 5, 4 * 9 * 8, 4 * 9 * 8 * 25),
    ],
)
def test_grouped_and_dilated_conv_rules_match_torch(
    conv: dict[str, Any], spatial: int, weights: int, macs: int
) -> None:
    architecture = _conv_net(**conv)
    assert architecture.shapes["c"] == (8, spatial, spatial)
    dense = 2 * 8 + 2
    assert (architecture.num_params, architecture.flops - 8 * 2) == (weights + dense, macs)
    module = architecture.to_module()
    assert sum(p.numel() for p in module.parameters()) == architecture.num_params
    assert _run(module, [4, 9, 9]).shape == (2, 2)


def test_conv_parameters_left_out_at_their_defaults() -> None:
    explicit = _conv_net(groups=1, dilation=1)
    assert explicit.nodes["c"].params == _conv_net().nodes["c"].params
    assert explicit.hash == _conv_net().hash
    assert _conv_net(groups=2).hash != _conv_net().hash


@pytest.mark.parametrize(
    ("conv", "message"),
    [
        ({"groups": 3}, r"groups=3 must divide its 4 input and 8 output channels"),
        ({"groups": 0}, r"nodes\[1\]\.groups: expected a positive int"),
        ({"dilation": True}, r"nodes\[1\]\.dilation: expected a positive int"),
    ],
)
def test_bad_conv_parameters_are_clear_errors(conv: dict[str, Any], message: str) -> None:
    with pytest.raises(ArchitectureError, match=message):
        _conv_net(**conv)


def test_a_huge_dilation_is_only_a_1x1_conv_in_disguise() -> None:
    architecture = _conv_net(dilation=10**6, groups=4)  # every tap but the centre is padding
    assert architecture.shapes["c"] == (8, 9, 9)
    assert _run(architecture.to_module(), [4, 9, 9]).shape == (2, 2)


def test_concat_shapes_are_checked() -> None:
    with pytest.raises(ArchitectureError, match="concat needs equal spatial sizes"):
        Architecture(
            [
                Node("x", "input", {"shape": [2, 8, 8]}),
                Node("p", "maxpool", {"pool_size": 2}, ("x",)),
                Node("c", "concat", {}, ("x", "p")),
                Node("g", "global_avgpool", {}, ("c",)),
                Node("o", "output", {"units": 2}, ("g",)),
            ]
        )


class Scale(nn.Module):
    """A stand-in for a user's op: a learnt per-channel scale, shape kept."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weight


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """An empty factory registry for the test, restored afterwards."""
    factories: dict[str, Any] = {}
    monkeypatch.setattr(torch_build, "_CELL_OPS", factories)
    return factories


def test_user_ops_need_a_registered_factory(registry: dict[str, Any]) -> None:
    space = CellSpace(
        name="gnn",
        num_nodes=4,
        inputs_per_node=1,
        ops=["gcn"],
        custom_ops=["gcn"],
        cell_output="concat",
        **TINY,
    )
    architecture = space.sample(0)
    assert {n.params["name"] for n in architecture.nodes.values() if n.op == "cell_op"} == {"gcn"}
    with pytest.raises(ArchitectureError, match=r"cell op 'gcn' has no PyTorch factory.*"):
        architecture.to_module()
    source = architecture.to_pytorch_source()
    assert "def cell_op(name: str, channels: int)" in source and "cell_op('gcn', 4)" in source
    torch_build.register_cell_op("gcn", Scale)
    module = architecture.to_module()
    assert _run(module, TINY["input_shape"]).shape == (2, 3)
    assert any(isinstance(m, Scale) for m in module.modules())


def test_register_cell_op_refuses_bad_input(registry: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="name: expected an identifier"):
        torch_build.register_cell_op("not valid", Scale)
    with pytest.raises(ValueError, match="factory: expected a callable"):
        torch_build.register_cell_op("gcn", "Scale")  # type: ignore[arg-type]
    torch_build.register_cell_op("gcn", lambda channels: "not a module")  # type: ignore[arg-type,return-value]
    space = CellSpace(inputs_per_node=1, ops=["gcn"], custom_ops=["gcn"], **TINY)
    with pytest.raises(ArchitectureError, match=r"factory returned str, not an nn\.Module"):
        space.sample(0).to_module()


def test_sources_without_user_ops_have_no_helper() -> None:
    assert "def cell_op" not in SPACES["darts"].sample(0).to_pytorch_source()
