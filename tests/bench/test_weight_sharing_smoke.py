"""The weight-sharing bench at a tiny size (`--smoke`), so the harness cannot rot: DARTS with
and without the skip fix and SPOS on 200 MNIST images, their cells trained from scratch beside
two random ones, and every cell looked up in the NAS-Bench-201 table."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from morphml.evaluators.tabular import true_accuracy
from morphml.space.cell import CellSpace

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_smoke_mode_searches_trains_and_looks_up_every_cell(tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    command = [sys.executable, "-W", "error", "-m", "bench.weight_sharing", "--smoke"]
    result = subprocess.run(
        [*command, "--json", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=280,
        check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-4000:]
    figures = json.loads(out.read_text())
    nb201 = CellSpace()
    assert [m["method"] for m in figures["methods"]] == [
        "darts (skip fix)",
        "darts (no fix)",
        "spos",
    ]
    for row in figures["methods"] + figures["random"]:
        assert 0.0 <= row["val_accuracy"] <= 1.0
        assert 0.0 < row["nb201_cifar10_val"] < 1.0
        cell = nb201.from_nb201(row["genotype"])  # a cell of NAS-Bench-201, and its table value
        assert true_accuracy(cell) == row["nb201_cifar10_val"]
    assert figures["methods"][0]["skip_edges"] <= 2  # the fix holds
    assert len(figures["random"]) == 2
    refs = figures["references"]
    assert round(100 * refs["nb201_optimum"], 2) == 91.61
    assert 39 < 100 * refs["all_skip"] < 41
    assert "NB201 optimum" in result.stdout and "load average" in result.stdout
