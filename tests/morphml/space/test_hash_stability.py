"""Canonical hashes are task keys in users' databases: they must never change.

The constants below were recorded before `CellSpace` grew its DARTS and one-input forms (and
before new primitives joined morphml/ops.py). Every existing spelling of a cell space and a
sequential space must keep producing the same variables, configs, architectures, hashes, sizes
and exported source. If this test fails, a change broke stored task keys: fix the change, never
these constants.
"""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from morphml import CellSpace, FloatRange, IntRange, Layer, SearchSpace, Space


def _layer_space() -> SearchSpace:
    return SearchSpace("frozen-cnn").add_layers(
        Layer.input(shape=(3, 16, 16)),
        Layer.conv2d(filters=IntRange(8, 16), kernel_size=[1, 3, 5], stride=[1, 2]),
        Layer.batchnorm(optional=True),
        Layer.activation(["relu", "gelu"]),
        Layer.repeat(
            Layer.residual(Layer.conv2d(filters=16, kernel_size=[3, 5]), Layer.relu()),
            depth=[0, 1, 2],
        ),
        Layer.maxpool(pool_size=[2, 4], optional=True),
        Layer.global_avgpool(),
        Layer.dropout(rate=FloatRange(0.0, 0.5)),
        Layer.dense(units=IntRange(16, 256, log=True), optional=True),
        Layer.output(units=5),
    )


SPACES: dict[str, Space] = {
    "nb201": CellSpace(),
    "small": CellSpace(num_nodes=3, ops=["none", "skip_connect", "nor_conv_3x3"]),
    "macro": CellSpace(
        name="m",
        num_nodes=5,
        ops=["avg_pool_3x3", "nor_conv_1x1", "none"],
        input_shape=[1, 8, 8],
        stem_channels=4,
        cells_per_stage=2,
        num_classes=3,
    ),
    "layers": _layer_space(),
}

# name -> sorted variable names, and per seed 0, 1, 2:
# (hash, config, num_params, flops, sha256 of the exported source [:16])
FROZEN: dict[str, dict[str, Any]] = {
    "layers": {
        "rows": [
            (
                0,
                "0d59bd2212263e5f99ce6df414671dd161c25a68d99e1459314cf5406be00a32",
                {
                    "1.filters": 16,
                    "1.kernel_size": 1,
                    "1.stride": 2,
                    "2.enabled": False,
                    "3.fn": "relu",
                    "4.0.0.0.kernel_size": 5,
                    "4.1.0.0.kernel_size": 3,
                    "4.depth": 2,
                    "5.enabled": True,
                    "5.pool_size": 2,
                    "7.rate": 0.3649158741300643,
                    "8.enabled": True,
                    "8.units": 59,
                },
                10103,
                561367,
                "289961e509ef40e9",
            ),
            (
                1,
                "49e3526d31dc2d44eb42edb99af7b58f5ea7a54c0f6d1e5be0f69390fbe99e15",
                {
                    "1.filters": 16,
                    "1.kernel_size": 1,
                    "1.stride": 2,
                    "2.enabled": False,
                    "3.fn": "relu",
                    "4.0.0.0.kernel_size": 5,
                    "4.depth": 1,
                    "5.enabled": False,
                    "7.rate": 0.20808996944717306,
                    "8.enabled": False,
                },
                6565,
                412752,
                "ab8bc2a41507c778",
            ),
            (
                2,
                "212deb963a8d8f98db49aeb2359a4269e5217984326b6762473127d4cf8bbd5c",
                {
                    "1.filters": 14,
                    "1.kernel_size": 5,
                    "1.stride": 1,
                    "2.enabled": False,
                    "3.fn": "relu",
                    "4.depth": 0,
                    "5.enabled": False,
                    "7.rate": 0.08835999043711618,
                    "8.enabled": False,
                },
                1139,
                268870,
                "7f8962497135a647",
            ),
        ],
        "variables": [
            "1.filters",
            "1.kernel_size",
            "1.stride",
            "2.enabled",
            "3.fn",
            "4.0.0.0.kernel_size",
            "4.1.0.0.kernel_size",
            "4.depth",
            "5.enabled",
            "5.pool_size",
            "7.rate",
            "8.enabled",
            "8.units",
        ],
    },
    "macro": {
        "rows": [
            (
                0,
                "de2c6a2ad03f799d086dab31b3d3f11954be0e8b05217923802ce737a1e5297b",
                {
                    "1<-0": "nor_conv_1x1",
                    "2<-0": "nor_conv_1x1",
                    "2<-1": "avg_pool_3x3",
                    "3<-0": "nor_conv_1x1",
                    "3<-1": "none",
                    "3<-2": "nor_conv_1x1",
                    "4<-0": "nor_conv_1x1",
                    "4<-1": "nor_conv_1x1",
                    "4<-2": "nor_conv_1x1",
                    "4<-3": "nor_conv_1x1",
                },
                10975,
                88048,
                "6007bef2195140cb",
            ),
            (
                1,
                "bdf73688f5e2c4885819c03136f4e12d33bfa3a32f7642d19f684ce22f0cbb6d",
                {
                    "1<-0": "avg_pool_3x3",
                    "2<-0": "none",
                    "2<-1": "avg_pool_3x3",
                    "3<-0": "nor_conv_1x1",
                    "3<-1": "avg_pool_3x3",
                    "3<-2": "nor_conv_1x1",
                    "4<-0": "nor_conv_1x1",
                    "4<-1": "nor_conv_1x1",
                    "4<-2": "none",
                    "4<-3": "nor_conv_1x1",
                },
                8623,
                66928,
                "1e5ddd40ed41cba8",
            ),
            (
                2,
                "f5097560fdd4457de6d90c239f119321910ff18e7a66b47ca217ea3d69f8be97",
                {
                    "1<-0": "avg_pool_3x3",
                    "2<-0": "avg_pool_3x3",
                    "2<-1": "avg_pool_3x3",
                    "3<-0": "nor_conv_1x1",
                    "3<-1": "avg_pool_3x3",
                    "3<-2": "none",
                    "4<-0": "none",
                    "4<-1": "nor_conv_1x1",
                    "4<-2": "nor_conv_1x1",
                    "4<-3": "none",
                },
                6271,
                45808,
                "cd90a8a35e2e1d75",
            ),
        ],
        "variables": [
            "1<-0",
            "2<-0",
            "2<-1",
            "3<-0",
            "3<-1",
            "3<-2",
            "4<-0",
            "4<-1",
            "4<-2",
            "4<-3",
        ],
    },
    "nb201": {
        "rows": [
            (
                0,
                "e2bb07f02057225d0cee294a1b098d3a21b5ff7507edfed979e133e1513522ba",
                {
                    "1<-0": "nor_conv_3x3",
                    "2<-0": "nor_conv_3x3",
                    "2<-1": "none",
                    "3<-0": "nor_conv_1x1",
                    "3<-1": "avg_pool_3x3",
                    "3<-2": "nor_conv_3x3",
                },
                830426,
                118502016,
                "5bc0d4c5a0dddc3b",
            ),
            (
                1,
                "d4287b64ac6874ebb8ce409e4b8458315d0087e9c594812630e615d7aec15fb3",
                {
                    "1<-0": "skip_connect",
                    "2<-0": "avg_pool_3x3",
                    "2<-1": "none",
                    "3<-0": "nor_conv_1x1",
                    "3<-1": "none",
                    "3<-2": "nor_conv_3x3",
                },
                344346,
                47436416,
                "c59a78e91f22142a",
            ),
            (
                2,
                "3c6b16e27949e1ccf95502d7f16d64747ee107da821c66a3297a69783d853152",
                {
                    "1<-0": "none",
                    "2<-0": "none",
                    "2<-1": "none",
                    "3<-0": "nor_conv_1x1",
                    "3<-1": "skip_connect",
                    "3<-2": "nor_conv_1x1",
                },
                129306,
                15979136,
                "f99dfbf7586bdca0",
            ),
        ],
        "variables": ["1<-0", "2<-0", "2<-1", "3<-0", "3<-1", "3<-2"],
    },
    "small": {
        "rows": [
            (
                0,
                "5c6d9ea906f027ddce092ee95f1d01308131663d79be061d352f5c5eeae4f9b2",
                {"1<-0": "skip_connect", "2<-0": "skip_connect", "2<-1": "none"},
                73306,
                7828096,
                "ae059329919fb42d",
            ),
            (
                1,
                "0f283e2faf5452a222e67296fac148b85bdfd0ff9973e0204e0ffa4d3890c990",
                {"1<-0": "none", "2<-0": "nor_conv_3x3", "2<-1": "none"},
                316346,
                43360896,
                "69d7a466d386ca43",
            ),
            (
                2,
                "ccc81718cf9cf155d37b27690ea58b000deea0e654a93f31752ee850025ceb32",
                {"1<-0": "none", "2<-0": "none", "2<-1": "none"},
                73306,
                7828096,
                "ddfaa43c1712d33e",
            ),
        ],
        "variables": ["1<-0", "2<-0", "2<-1"],
    },
}

NB201_DICT = {
    "type": "cell",
    "name": "nas-bench-201",
    "num_nodes": 4,
    "ops": ["none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"],
    "input_shape": [3, 32, 32],
    "stem_channels": 16,
    "cells_per_stage": 5,
    "num_classes": 10,
}


@pytest.mark.parametrize("name", sorted(SPACES))
def test_existing_spaces_build_what_they_always_built(name: str) -> None:
    space, frozen = SPACES[name], FROZEN[name]
    assert sorted(space.variables()) == frozen["variables"]
    for seed, digest, config, params, flops, source in frozen["rows"]:
        architecture = space.sample(seed)
        assert architecture.config == config
        assert architecture.hash == digest
        assert (architecture.num_params, architecture.flops) == (params, flops)
        exported = architecture.to_pytorch_source().encode()
        assert hashlib.sha256(exported).hexdigest()[:16] == source
        assert space.build(config).hash == digest  # and from the stored config alone


def test_existing_cell_spaces_keep_their_json_and_size() -> None:
    assert CellSpace().to_dict() == NB201_DICT
    assert CellSpace().size() == 5**6
    assert SPACES["small"].size() == 3**3
