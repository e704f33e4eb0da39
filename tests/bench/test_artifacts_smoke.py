"""The artifacts bench at a tiny size (`--quick`), so the harness cannot rot: a real server,
a 4 MB file up and down, two MNIST epochs of 200 images with a checkpoint upload beside one."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_quick_mode_measures_transfers_and_an_epoch(tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    command = [sys.executable, "-W", "error", "-m", "bench.artifacts", "--quick"]
    result = subprocess.run(
        [*command, "--json", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=60,
        check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-4000:]
    figures = json.loads(out.read_text())
    assert figures["transfer"]["upload_ratio"] > 0 and figures["transfer"]["download_ratio"] > 0
    assert figures["epoch"]["checkpoint_mb"] > 0 and figures["epoch"]["upload_s"] > 0
    assert "upload" in result.stdout and "load" in result.stdout
