"""Search spaces: the DSL, JSON round trips, sizes, and clear errors for bad specs."""

from __future__ import annotations

import json
import math

import pytest

from morphml import CellSpace, IntRange, Layer, SearchSpace, SpaceError, space_from_dict
from tests.morphml.spaces import all_spaces, cnn_space, rich_space


@pytest.mark.parametrize("name", sorted(all_spaces()))
def test_space_json_round_trip_is_lossless(name: str) -> None:
    space = all_spaces()[name]
    again = space_from_dict(json.loads(json.dumps(space.to_dict())))
    assert again.to_dict() == space.to_dict()
    assert again.variables() == space.variables()
    assert again.sample(7).hash == space.sample(7).hash


def test_sizes() -> None:
    assert cnn_space().size_label() == 2 * 2 * 2
    assert CellSpace().size_label() == 5**6
    assert rich_space().size_label() == "infinite"  # float dropout range
    repeat = SearchSpace("r").add_layers(
        Layer.input(shape=(4,)),
        Layer.repeat(Layer.dense(units=[1, 2]), depth=[1, 2]),
        Layer.dense(units=3, optional=True),
        Layer.output(units=2),
    )
    assert repeat.size_label() == (2 + 2**2) * 2


def test_sampling_is_reproducible_and_varied() -> None:
    space = rich_space()
    assert [space.sample(s).hash for s in range(5)] == [space.sample(s).hash for s in range(5)]
    assert len({space.sample(s).hash for s in range(30)}) > 20


def test_cell_space_nb201_strings_both_ways() -> None:
    space = CellSpace()
    text = "|nor_conv_3x3~0|+|none~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_1x1~1|nor_conv_3x3~2|"
    architecture = space.from_nb201(text)
    assert space.to_nb201(architecture) == text
    assert architecture.config["2<-1"] == "avg_pool_3x3"
    for seed in range(20):
        sampled = space.sample(seed)
        assert space.from_nb201(space.to_nb201(sampled)).hash == sampled.hash


def test_cell_space_hash_follows_the_network_not_the_string() -> None:
    space = CellSpace(cells_per_stage=1)
    # node2 = conv1x1(x) + conv3x3(x) either way round: the same network, one hash.
    a = space.from_nb201(
        "|nor_conv_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|none~0|none~1|skip_connect~2|"
    )
    b = space.from_nb201(
        "|nor_conv_1x1~0|+|nor_conv_3x3~0|skip_connect~1|+|none~0|none~1|skip_connect~2|"
    )
    assert a.hash == b.hash
    # conv1x1 then conv3x3 in sequence is another network.
    c = space.from_nb201("|nor_conv_1x1~0|+|none~0|nor_conv_3x3~1|+|none~0|none~1|skip_connect~2|")
    d = space.from_nb201("|nor_conv_3x3~0|+|none~0|nor_conv_1x1~1|+|none~0|none~1|skip_connect~2|")
    assert c.hash != d.hash


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: Layer.conv2d(filters=[]), "filters"),
        (lambda: Layer.conv2d(filters=-8), "conv2d.filters"),
        (lambda: Layer.conv2d(filters=[16, 0]), "conv2d.filters"),
        (lambda: Layer.dense(units=IntRange(-3, 4)), "dense.units"),
        (lambda: Layer.dropout(rate=1.5), "dropout.rate"),
        (lambda: Layer.activation(["relu", "swish"]), "activation.fn"),
        (lambda: Layer.repeat(Layer.relu(), depth=[-1, 2]), "repeat.depth"),
        (lambda: Layer.residual(), "residual.layers"),
        (lambda: Layer.input(shape=(0, 28, 28)), "input.shape"),
    ],
)
def test_bad_layers_name_the_field(build: object, field: str) -> None:
    with pytest.raises(SpaceError, match=field.replace(".", r"\.")):
        build()  # type: ignore[operator]


def _spec(*layers: dict[str, object]) -> dict[str, object]:
    return {"type": "sequential", "name": "s", "layers": list(layers)}


INPUT = {"type": "input", "shape": [1, 28, 28]}
OUTPUT = {"type": "output", "units": 10}


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            _spec(INPUT, {"type": "convolution", "filters": 8}, OUTPUT),
            r"layers\[1\]\.type: unknown layer 'convolution'",
        ),
        (
            _spec(INPUT, {"type": "conv2d", "filters": {"choice": []}}, OUTPUT),
            r"layers\[1\]\.filters.*empty choice",
        ),
        (
            _spec(INPUT, {"type": "conv2d", "filters": -4}, OUTPUT),
            r"layers\[1\]\.filters: expected a positive int",
        ),
        (
            _spec(INPUT, {"type": "conv2d", "filters": 4, "colour": 1}, OUTPUT),
            r"layers\[1\]\.colour",
        ),
        (_spec(INPUT, {"type": "conv2d"}, OUTPUT), r"layers\[1\]\.filters: conv2d needs filters"),
        (
            _spec({"type": "flatten"}, OUTPUT),
            r"layers\[0\]: a search space must start with Layer\.input",
        ),
        (_spec(INPUT, {"type": "flatten"}), r"layers\[1\]: must end with Layer\.output"),
        (_spec(INPUT, OUTPUT), r"output needs a flat input"),
        (
            _spec(INPUT, {"type": "flatten"}, {"type": "conv2d", "filters": 3}, OUTPUT),
            r"conv2d needs a \(C, H, W\)",
        ),
        (
            _spec(INPUT, {"type": "maxpool", "pool_size": 64}, {"type": "flatten"}, OUTPUT),
            r"window 64 does not fit",
        ),
        (
            _spec(
                INPUT,
                {"type": "residual", "layers": [{"type": "conv2d", "filters": 8}]},
                {"type": "flatten"},
                OUTPUT,
            ),
            r"add \(residual\) needs equal shapes",
        ),
        (_spec(INPUT, {"type": "repeat", "layers": []}, OUTPUT), r"layers\[1\]\.layers"),
        ({"type": "sequential", "name": "s"}, r"layers: expected a list"),
        ({"type": "graph"}, r"type: unknown space type 'graph'"),
        ({"type": "cell", "num_nodes": 1}, r"num_nodes: expected an int >= 2"),
        ({"type": "cell", "ops": ["nor_conv_7x7"]}, r"ops: expected a non-empty subset"),
        ({"type": "cell", "depth": 3}, r"depth: unknown field"),
    ],
)
def test_bad_json_specs_give_clear_errors(spec: dict[str, object], message: str) -> None:
    with pytest.raises(SpaceError, match=message):
        space_from_dict(spec)


def test_dsl_space_reports_missing_output_when_validated() -> None:
    space = SearchSpace("no-output").add_layers(Layer.input(shape=(4,)), Layer.dense(units=3))
    with pytest.raises(SpaceError, match=r"must end with Layer\.output"):
        space.validate()
    with pytest.raises(SpaceError, match="not a Layer"):
        space.add_layers("dense")  # type: ignore[arg-type]


def test_nb201_strings_are_checked() -> None:
    space = CellSpace()
    for bad in (
        "|nor_conv_3x3~0|",
        "|conv~0|+|none~0|none~1|+|none~0|none~1|none~2|",
        "|none~1|+|none~0|none~1|+|none~0|none~1|none~2|",
    ):
        with pytest.raises(SpaceError, match="genotype"):
            space.from_nb201(bad)


def test_float_range_is_infinite_and_log_ranges_stay_in_bounds() -> None:
    space = SearchSpace("f").add_layers(
        Layer.input(shape=(4,)),
        Layer.dense(units=IntRange(1, 1000, log=True)),
        Layer.output(units=2),
    )
    units = [space.sample(s).config["1.units"] for s in range(200)]
    assert all(1 <= u <= 1000 for u in units)
    assert sum(u < 32 for u in units) > 60  # log scale favours small values
    assert math.isfinite(space.size())
