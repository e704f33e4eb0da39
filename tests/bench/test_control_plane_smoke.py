"""The control-plane bench's smoke mode runs end to end (SQLite only), so the harness cannot rot.

It runs as its own process, as documented (`python -m bench.control_plane --smoke`), with
warnings as errors; the Optuna rivals are spawned processes and need an importable main module.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def test_smoke_mode_measures_every_section(tmp_path: Path) -> None:
    pytest.importorskip("optuna")
    out = tmp_path / "rows.json"
    command = [sys.executable, "-W", "error", "-m", "bench.control_plane", "--smoke"]
    result = subprocess.run(
        [*command, "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    rows = json.loads(out.read_text())
    assert {row["section"] for row in rows} == {"throughput", "paced", "optuna", "scale", "idle"}
    assert all(row["rate"] > 0 for row in rows if "rate" in row)
    assert all(row["machine"].startswith("load ") for row in rows)
    idle = next(row for row in rows if row["section"] == "idle")
    assert len(idle["wake_ms"]) == 1
    assert "### Throughput and latency" in result.stdout
