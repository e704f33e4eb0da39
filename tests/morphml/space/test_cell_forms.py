"""The cell forms beyond NAS-Bench-201: DARTS-style cells (two picked inputs per node, two cell
inputs, concatenated output) and one-input graph cells over a user's own ops."""

from __future__ import annotations

import itertools
import json
import math
import random
from typing import Any

import pytest
from pydantic import TypeAdapter

from morphml import Architecture, CellSpace, SpaceError, space_from_dict
from morphml.architecture import Node
from morphml.errors import ArchitectureError
from morphml.evaluators.base import EvaluatorError
from morphml.evaluators.params import check_evaluator
from morphml.evaluators.tabular import table_key
from morphml.mutation import crossover, mutate, neighbours
from morphml.optimizers import make_optimizer
from morphml.optimizers._encoding import Encoder
from morphml.space import DARTS_OPS
from morphml.space.cell import CellEdge
from morphml.space.limits import SpaceLimits, check_space_limits
from morphml.wire import CellSpaceSpec

TINY: dict[str, Any] = {
    "input_shape": [1, 8, 8],
    "stem_channels": 4,
    "cells_per_stage": 1,
    "num_classes": 3,
}


def darts(**overrides: Any) -> CellSpace:
    fields: dict[str, Any] = {
        "name": "darts",
        "num_nodes": 6,
        "cell_inputs": 2,
        "inputs_per_node": 2,
        "ops": list(DARTS_OPS),
        "cell_output": "concat",
        **TINY,
    }
    return CellSpace(**{**fields, **overrides})


def gnn(**overrides: Any) -> CellSpace:
    fields: dict[str, Any] = {
        "name": "gnn",
        "num_nodes": 5,
        "inputs_per_node": 1,
        "ops": ["gcn", "gat", "skip_connect"],
        "custom_ops": ["gcn", "gat"],
        **TINY,
    }
    return CellSpace(**{**fields, **overrides})


def test_variables_of_the_picked_input_form() -> None:
    variables = darts().variables()
    assert list(variables)[:4] == ["2.in0", "2.op0", "2.in1", "2.op1"]
    assert variables["2.in0"].options == (0, 1)  # type: ignore[union-attr]
    assert variables["5.in1"].options == (0, 1, 2, 3, 4)  # type: ignore[union-attr]
    assert variables["5.op1"].options == DARTS_OPS  # type: ignore[union-attr]
    assert len(variables) == 4 * 2 * 2


def test_size_formula() -> None:
    assert darts().size() == math.prod(math.perm(j, 2) * 7**2 for j in range(2, 6))
    assert gnn().size() == math.prod(j * 3 for j in range(1, 5))
    dense_two_inputs = CellSpace(num_nodes=4, cell_inputs=2, ops=["none", "skip_connect"], **TINY)
    assert dense_two_inputs.size() == 2 ** (2 + 3)  # edges into nodes 2 and 3


@pytest.mark.parametrize(
    "space",
    [
        CellSpace(num_nodes=4, cell_inputs=2, inputs_per_node=2, ops=["avg_pool_3x3"], **TINY),
        CellSpace(num_nodes=4, inputs_per_node=1, ops=["skip_connect", "nor_conv_1x1"], **TINY),
    ],
    ids=["two-picks", "one-pick"],
)
def test_size_counts_exactly_the_member_configs(space: CellSpace) -> None:
    domains = space.variables()
    members = 0
    for values in itertools.product(*(d.options for d in domains.values())):  # type: ignore[union-attr]
        config = dict(zip(domains, values, strict=True))
        members += space.contains(space.build(config)) and space.build(config).config == config
    assert members == space.size()


def test_inputs_of_a_node_are_distinct() -> None:
    space = darts()
    for seed in range(30):
        config = space.sample(seed).config
        for node in range(2, 6):
            assert config[f"{node}.in0"] != config[f"{node}.in1"]
    member = space.sample(0)
    repeated = {**member.config, "3.in1": member.config["3.in0"]}
    assert not space.contains(Architecture(member.nodes.values(), repeated, "darts"))
    assert space.build(repeated).config["3.in1"] != repeated["3.in1"]  # redrawn, as invalid
    out_of_range = {**member.config, "2.in0": 2}
    assert not space.contains(Architecture(member.nodes.values(), out_of_range, "darts"))


def test_edges_read_a_members_config() -> None:
    space = gnn()
    architecture = space.sample(3)
    edges = space.edges(architecture.config)
    assert [e.node for e in edges] == [1, 2, 3, 4]
    assert all(e.source < e.node and e.op in space.ops for e in edges)
    assert edges[0] == CellEdge(1, 0, architecture.config["1.op0"])
    with pytest.raises(SpaceError, match=r"config\.4\.in0"):
        space.edges({k: v for k, v in architecture.config.items() if k != "4.in0"})
    with pytest.raises(SpaceError, match=r"config\.2\.op0"):
        space.edges({**architecture.config, "2.op0": "sage"})
    with pytest.raises(SpaceError, match=r"config\.3\.in0: expected an int node index"):
        space.edges({**architecture.config, "3.in0": 1.0})


@pytest.mark.parametrize("bad", [1.0, True, "1"])
def test_a_source_that_is_no_int_never_builds(bad: Any) -> None:
    space = gnn()
    member = space.sample(0)
    config = {**member.config, "3.in0": bad}
    assert not space.contains(Architecture(member.nodes.values(), config, "gnn"))
    try:
        rebuilt = space.build(config)
    except ArchitectureError as exc:
        assert "3.in0: expected an int node index" in str(exc)
    else:  # "1" is no option at all: redrawn like any invalid value
        assert isinstance(rebuilt.config["3.in0"], int) and not isinstance(bad, int | float)


def test_structure_describes_the_slots() -> None:
    structure = darts().structure
    assert list(structure.intermediate_nodes) == [2, 3, 4, 5]
    slots = structure.node_slots(4)
    assert [(s.source_key, s.op_key, s.sources) for s in slots] == [
        ("4.in0", "4.op0", (0, 1, 2, 3)),
        ("4.in1", "4.op1", (0, 1, 2, 3)),
    ]
    dense = CellSpace().structure
    assert [(s.node, s.sources, s.op_key, s.source_key) for s in dense.node_slots(2)] == [
        (2, (0,), "2<-0", None),
        (2, (1,), "2<-1", None),
    ]


@pytest.mark.parametrize(
    "space",
    [
        darts(),
        gnn(),
        darts(node_aggregation="concat", cell_output="sum", name="mixed"),
        CellSpace(num_nodes=4, cell_inputs=2, cell_output="concat", **TINY),
    ],
    ids=["darts", "gnn", "concat-nodes", "dense-two-inputs"],
)
def test_json_round_trip(space: CellSpace) -> None:
    data = json.loads(json.dumps(space.to_dict()))
    again = space_from_dict(data)
    assert again == space and again.variables() == space.variables()
    assert again.sample(5).hash == space.sample(5).hash
    TypeAdapter(CellSpaceSpec).validate_python(data)  # the documented schema describes it


def test_new_fields_at_their_defaults_stay_out_of_the_json() -> None:
    spelled = CellSpace(inputs_per_node=None, cell_inputs=1, node_aggregation="sum", custom_ops=[])
    assert spelled.to_dict() == CellSpace().to_dict()
    assert set(darts().to_dict()) - set(CellSpace().to_dict()) == {
        "cell_inputs",
        "inputs_per_node",
        "cell_output",
    }


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"ops": ["nor_conv_3x3", "gcn"]}, r"ops: .*unknown: \['gcn'\]; declare"),
        ({"ops": "skip_connect"}, r"ops: expected a non-empty subset"),
        ({"ops": []}, r"ops: expected a non-empty subset"),
        ({"ops": [3]}, r"ops: .*unknown: \[3\]"),
        ({"custom_ops": ["skip_connect"]}, r"custom_ops: 'skip_connect' is a built-in op"),
        ({"custom_ops": ["my op"]}, r"custom_ops: 'my op' is not an identifier"),
        ({"custom_ops": ["x" * 65]}, r"custom_ops: 'x+' is not an identifier"),
        ({"custom_ops": ["gcn", "gcn"]}, r"custom_ops: repeated names"),
        ({"custom_ops": "gcn"}, r"custom_ops: expected a list"),
        ({"inputs_per_node": 3, "cell_inputs": 2}, r"inputs_per_node: node 2, .* pick 3"),
        ({"inputs_per_node": 2}, r"inputs_per_node: node 1, .* pick 2"),
        ({"inputs_per_node": 0}, r"inputs_per_node: expected an int >= 1"),
        ({"inputs_per_node": True}, r"inputs_per_node: expected an int >= 1"),
        ({"inputs_per_node": "2"}, r"inputs_per_node: expected an int >= 1"),
        ({"inputs_per_node": 10**12}, r"inputs_per_node: node 1"),
        ({"cell_inputs": 4}, r"cell_inputs: a cell of 4 nodes has at most 3 inputs"),
        ({"cell_inputs": 10**12}, r"cell_inputs: a cell of 4 nodes"),
        ({"cell_inputs": 0}, r"cell_inputs: expected an int >= 1"),
        ({"node_aggregation": "mean"}, r"node_aggregation: expected one of \['sum', 'concat'\]"),
        ({"cell_output": "max"}, r"cell_output: expected one of \['last', 'sum', 'concat'\]"),
        ({"cell_output": None}, r"cell_output: expected one of"),
    ],
)
def test_bad_fields_are_space_errors_naming_the_field(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(SpaceError, match=message):
        space_from_dict({"type": "cell", **TINY, **fields})


def test_limits_bound_the_new_forms_before_anything_is_built() -> None:
    limits = SpaceLimits()
    with pytest.raises(SpaceError, match="max_nodes"):
        check_space_limits({"type": "cell", "inputs_per_node": 10**9}, limits)
    with pytest.raises(SpaceError, match="max_nodes"):
        check_space_limits(
            {"type": "cell", "num_nodes": 12, "cells_per_stage": 32, "ops": ["sep_conv_5x5"]},
            limits,
        )
    check_space_limits(darts(cells_per_stage=5).to_dict(), limits)


def _pairs_swapped(config: dict[str, Any], node: int) -> dict[str, Any]:
    swapped = dict(config)
    for field in ("in", "op"):
        swapped[f"{node}.{field}0"] = config[f"{node}.{field}1"]
        swapped[f"{node}.{field}1"] = config[f"{node}.{field}0"]
    return swapped


@pytest.mark.parametrize("node_aggregation", ["sum", "concat"])
def test_swapped_input_pairs_of_a_node_are_one_network(node_aggregation: str) -> None:
    space = darts(node_aggregation=node_aggregation, name="darts-" + node_aggregation)
    for seed in range(10):
        member = space.sample(seed)
        for node in range(2, 6):
            twin = space.build(_pairs_swapped(member.config, node))
            assert twin.config != member.config and twin.hash == member.hash


def test_nodes_listed_in_another_order_are_one_network() -> None:
    space = darts()
    first = {"2.in0": 0, "2.op0": "sep_conv_3x3", "2.in1": 1, "2.op1": "skip_connect"}
    second = {"3.in0": 1, "3.op0": "max_pool_3x3", "3.in1": 0, "3.op1": "dil_conv_5x5"}
    rest = {"4.in0": 2, "4.op0": "avg_pool_3x3", "4.in1": 3, "4.op1": "sep_conv_5x5"}
    rest |= {"5.in0": 4, "5.op0": "skip_connect", "5.in1": 0, "5.op1": "dil_conv_3x3"}
    a = space.build({**first, **second, **rest})
    # Nodes 2 and 3 exchanged: node 3 now computes what node 2 did, and the references follow.
    moved = {
        k.replace("2.", "X.").replace("3.", "2.").replace("X.", "3."): v for k, v in first.items()
    }
    moved |= {k.replace("3.", "2."): v for k, v in second.items()}
    swap: dict[Any, Any] = {2: 3, 3: 2}
    moved |= {k: swap.get(v, v) if ".in" in k else v for k, v in rest.items()}
    b = space.build(moved)
    assert a.config != b.config and a.hash == b.hash
    # A different op on one edge is another network.
    c = space.build({**first, **second, **rest, "5.op1": "dil_conv_5x5"})
    assert c.hash != a.hash


def _concat_net(order: tuple[str, str], then: str) -> Architecture:
    nodes = [
        Node("in", "input", {"shape": [2, 4, 4]}),
        Node("a", "activation", {"fn": "relu"}, ("in",)),
        Node("b", "activation", {"fn": "tanh"}, ("in",)),
        Node("cat", "concat", {}, order),
        Node("bn", "batchnorm", {}, ("cat",)),
    ]
    if then == "conv":
        nodes.append(Node("mix", "conv2d", {"filters": 4, "kernel_size": 1}, ("bn",)))
    else:  # added to a fixed tensor: which channel meets which now matters
        nodes.append(Node("pad", "conv2d", {"filters": 4, "kernel_size": 1}, ("in",)))
        nodes.append(Node("mix", "add", {}, ("bn", "pad")))
    nodes += [
        Node("pool", "global_avgpool", {}, ("mix",)),
        Node("out", "output", {"units": 2}, ("pool",)),
    ]
    return Architecture(nodes)


def test_concat_order_counts_only_where_the_network_sees_it() -> None:
    assert _concat_net(("a", "b"), "conv").hash == _concat_net(("b", "a"), "conv").hash
    assert _concat_net(("a", "b"), "add").hash != _concat_net(("b", "a"), "add").hash
    assert _concat_net(("a", "b"), "add").hash == _concat_net(("a", "b"), "add").hash


def test_dense_form_helpers_refuse_the_other_forms() -> None:
    with pytest.raises(SpaceError, match="to_nb201: NAS-Bench-201 strings describe the dense"):
        darts().to_nb201(darts().sample(0))
    with pytest.raises(SpaceError, match="from_nb201"):
        CellSpace(cell_output="concat").from_nb201(
            "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"
        )
    with pytest.raises(EvaluatorError, match="tabular needs a 4-node NAS-Bench-201"):
        check_evaluator("tabular", {}, darts().to_dict())
    with pytest.raises(EvaluatorError, match="tabular needs a 4-node NAS-Bench-201"):
        check_evaluator("tabular", {}, CellSpace(cell_output="sum").to_dict())
    with pytest.raises(EvaluatorError, match="4-node NAS-Bench-201 cell space"):
        table_key(darts().sample(0))


def test_only_a_python_evaluator_takes_user_ops() -> None:
    for kind in ("train", "proxy"):
        with pytest.raises(EvaluatorError, match=r"^search_space\.custom_ops: .* python"):
            check_evaluator(kind, {}, gnn().to_dict())
        check_evaluator(kind, {"dataset": "digits"}, darts(num_classes=10).to_dict())
    check_evaluator("python", {"function": "my_gnn.search:evaluate"}, gnn().to_dict())


def test_path_encoding_only_for_the_nb201_form() -> None:
    assert Encoder(CellSpace()).paths
    for space in (darts(), gnn(), CellSpace(cell_output="concat")):
        encoder = Encoder(space)
        assert not encoder.paths
        rows = encoder.encode([space.sample(s).config for s in range(4)])
        assert (
            rows.shape == (4, encoder.width) and (rows.sum(axis=1) == len(space.variables())).all()
        )


@pytest.mark.parametrize("space", [darts(), gnn()], ids=["darts", "gnn"])
def test_mutation_crossover_and_neighbours_stay_in_the_space(space: CellSpace) -> None:
    rng = random.Random(0)
    parent, other = space.sample(1), space.sample(2)
    for _ in range(20):
        child = mutate(space, parent, rng)
        assert child.hash != parent.hash and space.contains(child)
        assert space.contains(crossover(space, parent, other, rng))
    near = neighbours(space, parent, rng)
    assert near and all(space.contains(n) and n.hash != parent.hash for n in near)


@pytest.mark.parametrize("optimizer", ["regularized_evolution", "surrogate"])
@pytest.mark.parametrize("space", [darts(), gnn()], ids=["darts", "gnn"])
def test_optimizers_ask_valid_distinct_members(optimizer: str, space: CellSpace) -> None:
    small: dict[str, Any] = {
        "regularized_evolution": {"population_size": 5, "sample_size": 2},
        "surrogate": {"initial_samples": 4, "random_pool": 20, "mutations": 5},
    }
    search = make_optimizer(optimizer, space, seed=0, **small[optimizer])
    seen: set[str] = set()
    for _ in range(5):
        for candidate in search.ask(3):
            architecture = candidate.architecture
            assert space.contains(architecture) and architecture.hash not in seen
            seen.add(architecture.hash)
            score = (int(architecture.hash[:6], 16) % 100) / 100
            search.tell(candidate, {"val_accuracy": score})
    assert len(seen) == 15
