"""Deriving cells from architecture weights: the argmax, the skip limit, the next-best cells."""

from __future__ import annotations

import torch

from morphml.space.cell import NB201_OPS, CellSpace
from morphml.weight_sharing.cells import CellLayout, Path, config_of
from morphml.weight_sharing.derive import derive, raw_path, skip_count

SPACE = CellSpace()  # NAS-Bench-201: 6 edges over its 5 ops
SKIP = NB201_OPS.index("skip_connect")
CONV = NB201_OPS.index("nor_conv_3x3")
POOL = NB201_OPS.index("avg_pool_3x3")


def argmax_path(alpha: torch.Tensor) -> Path:
    return raw_path(CellLayout(SPACE), alpha)


def skip_heavy_alpha() -> torch.Tensor:
    """Every edge prefers skip_connect, by margins that grow with the edge's index; conv comes
    second everywhere."""
    alpha = torch.zeros(6, len(NB201_OPS))
    for edge in range(6):
        alpha[edge, SKIP] = 1.0 + 0.5 * edge
        alpha[edge, CONV] = 1.0
    return alpha


def test_the_raw_derivation_is_each_edges_argmax_none_included() -> None:
    alpha = torch.zeros(6, len(NB201_OPS))
    alpha[:, 0] = 1.0  # "none" strongest everywhere: NB201-style derivation keeps it
    alpha[0, CONV] = 2.0
    assert argmax_path(alpha) == [CONV, 0, 0, 0, 0, 0]
    assert derive(SPACE, alpha, max_skip=None, top_k=1) == [argmax_path(alpha)]


def test_the_skip_limit_keeps_the_skip_edges_that_cost_most_to_give_up() -> None:
    alpha = skip_heavy_alpha()
    assert skip_count(SPACE, argmax_path(alpha)) == 6
    (best,) = derive(SPACE, alpha, max_skip=2, top_k=1)
    assert best == [CONV, CONV, CONV, CONV, SKIP, SKIP]  # the two widest margins stay
    assert derive(SPACE, alpha, max_skip=0, top_k=1) == [[CONV] * 6]
    assert derive(SPACE, alpha, max_skip=None, top_k=1) == [[SKIP] * 6]


def test_next_best_cells_are_distinct_networks_within_the_skip_limit() -> None:
    alpha = skip_heavy_alpha()
    alpha[:, POOL] = 0.5  # a third choice per edge, so there is plenty to rank
    found = derive(SPACE, alpha, max_skip=2, top_k=10)
    assert len(found) == 10 and found[0] == [CONV, CONV, CONV, CONV, SKIP, SKIP]
    hashes = {SPACE.build(config_of(SPACE, path)).hash for path in found}
    assert len(hashes) == 10
    assert all(skip_count(SPACE, path) <= 2 for path in found)
    # best first: the log-probability of the cells never rises
    logp = torch.log_softmax(alpha, dim=-1)

    def score(path: list[int]) -> float:
        return float(sum(logp[e, op] for e, op in enumerate(path)))

    scores = [score(path) for path in found]
    assert scores == sorted(scores, reverse=True)


def test_asking_for_more_cells_than_exist_returns_each_network_once() -> None:
    space = CellSpace(num_nodes=2, ops=("none", "skip_connect", "nor_conv_3x3"))
    found = derive(space, torch.zeros(1, 3), max_skip=None, top_k=50)
    assert sorted(path[0] for path in found) == [0, 1, 2]
    # "none" and skip_connect on the only edge of a 2-node cell are different networks, but
    # with max_skip=0 only two remain
    assert len(derive(space, torch.zeros(1, 3), max_skip=0, top_k=50)) == 2


def test_input_selection_keeps_each_nodes_strongest_inputs_and_never_none() -> None:
    space = CellSpace(num_nodes=5, cell_inputs=2, inputs_per_node=2, cell_output="concat",
                      ops=("none", "skip_connect", "sep_conv_3x3"))  # fmt: skip
    layout = CellLayout(space)
    alpha = torch.zeros(len(layout.edges), 3)
    alpha[:, 0] = 5.0  # "none" strongest everywhere: a picked input still gets a real op
    strong = {(2, 0): 1, (2, 1): 2, (3, 0): 2, (3, 2): 1, (4, 3): 1, (4, 1): 2}
    for edge, op in strong.items():
        alpha[layout.index[edge], op] = 4.0
    (path,) = derive(space, alpha, max_skip=None, top_k=1)
    config = layout.to_config(path)
    assert config == {"2.in0": 0, "2.op0": "skip_connect", "2.in1": 1, "2.op1": "sep_conv_3x3",
                      "3.in0": 0, "3.op0": "sep_conv_3x3", "3.in1": 2, "3.op1": "skip_connect",
                      "4.in0": 1, "4.op0": "sep_conv_3x3", "4.in1": 3,
                      "4.op1": "skip_connect"}  # fmt: skip
    assert space.contains(space.build(config))
    (limited,) = derive(space, alpha, max_skip=1, top_k=1)
    assert layout.skips(limited) == 1
    found = derive(space, alpha, max_skip=1, top_k=5)
    assert len({space.build(layout.to_config(p)).hash for p in found}) == 5
    assert all(layout.skips(p) <= 1 for p in found)
