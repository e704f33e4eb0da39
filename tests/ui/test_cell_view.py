"""The task page's cell drawing reads every cell form through `CellSpace.edges`, and stays quiet
(None) for a config or space it cannot read rather than failing the page."""

from __future__ import annotations

from morphml.space.cell import CellSpace
from server.ui.task_view import _cell


def test_the_nas_bench_201_cell_keeps_its_edges() -> None:
    space = CellSpace()
    architecture = space.from_nb201(
        "|nor_conv_3x3~0|+|none~0|skip_connect~1|+|avg_pool_3x3~0|none~1|nor_conv_1x1~2|"
    )
    cell = _cell(architecture.config, space.to_dict())
    assert cell is not None and cell["num_nodes"] == 4 and cell["cell_inputs"] == 1
    assert {"from": 1, "to": 2, "op": "skip_connect"} in cell["edges"]
    assert {"from": 2, "to": 3, "op": "nor_conv_1x1"} in cell["edges"]
    assert len(cell["edges"]) == 6


def test_a_darts_style_cell_shows_its_picked_inputs() -> None:
    space = CellSpace(
        num_nodes=5,
        cell_inputs=2,
        inputs_per_node=2,
        cell_output="concat",
        ops=["skip_connect", "sep_conv_3x3", "max_pool_3x3"],
        input_shape=[1, 8, 8],
    )
    architecture = space.sample(3)
    cell = _cell(architecture.config, space.to_dict())
    assert cell is not None and cell["num_nodes"] == 5 and cell["cell_inputs"] == 2
    picked = {(e["from"], e["to"], e["op"]) for e in cell["edges"]}
    config = architecture.config
    expected = {
        (config[f"{node}.in{k}"], node, config[f"{node}.op{k}"])
        for node in (2, 3, 4)
        for k in (0, 1)
    }
    assert picked == expected


def test_unreadable_configs_and_spaces_draw_no_cell() -> None:
    space = CellSpace(num_nodes=3)
    assert _cell({"1<-0": "warp_drive"}, space.to_dict()) is None
    assert _cell({}, {"type": "cell", "num_nodes": "many"}) is None
    assert _cell({"1<-0": "none"}, {"type": "sequential"}) is None
