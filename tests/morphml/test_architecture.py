"""Architectures: validation, the canonical hash, counts, and JSON errors."""

from __future__ import annotations

import pytest

from morphml import Architecture, ArchitectureError, Node
from tests.morphml.spaces import cnn_space


def chain(*ops: tuple[str, dict[str, object]], ids: list[str] | None = None) -> Architecture:
    ids = ids or [f"n{i}" for i in range(len(ops))]
    nodes = [Node(ids[0], "input", {"shape": [1, 8, 8]})]
    for i, (op, params) in enumerate(ops[1:], start=1):
        nodes.append(Node(ids[i], op, params, (ids[i - 1],)))
    return Architecture(nodes)


CONV = ("conv2d", {"filters": 4})
RELU = ("activation", {"fn": "relu"})
POOL = ("maxpool", {"pool_size": 2})
FLAT = ("flatten", {})
OUT = ("output", {"units": 3})
IN = ("input", {})


def test_hash_ignores_ids_and_listing_order() -> None:
    a = chain(IN, CONV, RELU, FLAT, OUT)
    b = chain(IN, CONV, RELU, FLAT, OUT, ids=["x", "c", "r", "f", "o"])
    shuffled = Architecture(reversed(list(b.nodes.values())))
    assert a.hash == b.hash == shuffled.hash
    assert a == b


def test_hash_is_order_aware() -> None:
    # MorphML 1.0 hashed a sorted multiset of layers, so these two collided.
    assert (
        chain(IN, CONV, RELU, POOL, FLAT, OUT).hash != chain(IN, CONV, POOL, RELU, FLAT, OUT).hash
    )


def test_residual_add_is_commutative_in_the_hash() -> None:
    def residual(first: str) -> Architecture:
        nodes = [
            Node("i", "input", {"shape": [4, 8, 8]}),
            Node("c", "conv2d", {"filters": 4}, ("i",)),
            Node("a", "add", {}, ("i", "c") if first == "i" else ("c", "i")),
            Node("f", "flatten", {}, ("a",)),
            Node("o", "output", {"units": 2}, ("f",)),
        ]
        return Architecture(nodes)

    assert residual("i").hash == residual("c").hash


def test_counts_match_hand_computation() -> None:
    a = chain(IN, CONV, POOL, FLAT, OUT)
    conv = 1 * 9 * 4 + 4
    dense = 4 * 4 * 4 * 3 + 3
    assert a.num_params == conv + dense
    assert a.flops == 1 * 9 * 4 * 8 * 8 + 64 * 3
    assert a.shapes[a.output_id] == (3,)


@pytest.mark.parametrize(
    ("nodes", "message"),
    [
        ([Node("o", "output", {"units": 2})], "exactly one input"),
        ([Node("i", "input", {"shape": [3]})], "exactly one output"),
        (
            [
                Node("i", "input", {"shape": [3]}),
                Node("a", "dense", {"units": 3}, ("b",)),
                Node("b", "dense", {"units": 3}, ("a",)),
                Node("o", "output", {"units": 2}, ("b",)),
            ],
            "cycle",
        ),
        (
            [Node("i", "input", {"shape": [3]}), Node("o", "output", {"units": 2}, ("zz",))],
            "'zz' does not exist",
        ),
        (
            [
                Node("i", "input", {"shape": [3]}),
                Node("d", "dense", {"units": 3}, ("i",)),
                Node("o", "output", {"units": 2}, ("i",)),
            ],
            "does not reach the output",
        ),
        (
            [Node("i", "input", {"shape": [3]}), Node("o", "output", {"units": -2}, ("i",))],
            r"units: expected a positive int",
        ),
        (
            [Node("i", "input", {"shape": [3]}), Node("o", "softmax", {}, ("i",))],
            "unknown op 'softmax'",
        ),
        (
            [
                Node("i", "input", {"shape": [3]}),
                Node("x", "input", {"shape": [3]}),
                Node("x", "output", {"units": 2}, ("i",)),
            ],
            "duplicate node id",
        ),
    ],
)
def test_invalid_graphs_are_refused(nodes: list[Node], message: str) -> None:
    with pytest.raises(ArchitectureError, match=message):
        Architecture(nodes)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{", "not valid JSON"),
        ("[]", "'nodes' list"),
        ('{"nodes": [7]}', r"nodes\[0\]: expected an object"),
        ('{"nodes": [{"id": "i"}]}', r"nodes\[0\]\.op"),
        ('{"nodes": [{"id": "i", "op": "input", "inputs": "x"}]}', r"nodes\[0\]\.inputs"),
    ],
)
def test_bad_json_is_refused(text: str, message: str) -> None:
    with pytest.raises(ArchitectureError, match=message):
        Architecture.from_json(text)


def test_json_round_trip_keeps_config_and_space() -> None:
    a = cnn_space().sample(3)
    b = Architecture.from_json(a.to_json())
    assert (b.hash, b.config, b.space) == (a.hash, a.config, "cnn")
