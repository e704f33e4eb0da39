"""SPOS: a single-path supernet, then evolution over its cells with the shared weights."""

from __future__ import annotations

from morphml.space.cell import CellSpace
from morphml.weight_sharing import SearchSettings, search
from morphml.weight_sharing.cells import CellLayout, Path, config_of
from morphml.weight_sharing.evolution import Evolution
from tests.morphml.weight_sharing.helpers import tiny_digits, tiny_space


def test_spos_returns_distinct_valid_cells_best_first_and_reports_each_phase() -> None:
    space = tiny_space()
    reports: list[dict[str, float]] = []
    settings = SearchSettings(method="spos", epochs=2, population=6, generations=2, top_k=3)
    found = search(space, settings, tiny_digits(), report=reports.append, device="cpu")
    assert len(found) == 3
    assert len({space.build(d.config).hash for d in found}) == 3
    assert all(space.contains(space.build(d.config)) for d in found)
    assert [d.score for d in found] == sorted((d.score for d in found), reverse=True)
    epochs = [r for r in reports if "epoch" in r]
    generations = [r for r in reports if "generation" in r]
    assert [r["epoch"] for r in epochs] == [1, 2]
    assert [r["generation"] for r in generations] == [1, 2]
    assert [r["step"] for r in reports] == [1, 2, 3, 4]
    assert reports[-1]["progress"] == 1.0
    again = search(space, settings, tiny_digits(), device="cpu")
    assert again == found  # a seed gives the same search


def test_evolution_climbs_to_the_best_cell_without_scoring_one_twice() -> None:
    space = CellSpace(num_nodes=4, cells_per_stage=1)  # NAS-Bench-201's 15,625 cells
    scored: list[Path] = []
    conv = space.ops.index("nor_conv_3x3")

    def score(path: Path) -> float:
        scored.append(path)
        return sum(op == conv for op in path) / len(path)

    reports: list[dict[str, float]] = []
    found = Evolution(CellLayout(space), score, population=10, seed=0).run(
        20, reports.append, 0, 20
    )
    assert found[0] == ([conv] * 6, 1.0)
    assert len(scored) == len(found)  # each cell scored once, and all of them returned
    assert len({space.build(config_of(space, path)).hash for path, _ in found}) == len(found)
    best = [r["evolution_best_accuracy"] for r in reports]
    assert best == sorted(best) and best[-1] == 1.0


def test_evolution_in_a_space_smaller_than_its_population_stops() -> None:
    space = tiny_space(ops=("skip_connect", "nor_conv_3x3"), num_nodes=2)  # two networks
    found = Evolution(CellLayout(space), lambda path: float(path[0]), population=8, seed=0).run(
        50, lambda metrics: None, 0, 50
    )
    assert found == [([1], 1.0), ([0], 0.0)]


def test_spos_in_a_tiny_space_returns_what_there_is() -> None:
    space = tiny_space(ops=("skip_connect", "nor_conv_3x3"), num_nodes=2)
    settings = SearchSettings(method="spos", epochs=1, population=4, generations=3, top_k=5)
    found = search(space, settings, tiny_digits(), device="cpu")
    assert sorted(d.config["1<-0"] for d in found) == ["nor_conv_3x3", "skip_connect"]
