"""Weight-sharing NAS end to end: the README's example spec, submitted with `morphml submit` to a
real `morphml-server`, run by a real `morphml-worker` with the `train` evaluator. One supernet
task (intermediate metrics per epoch, a checkpoint uploaded), then its derived cells trained from
scratch as the final tasks, one of which is the experiment's best."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from morphml.optimizers.derived import derived_configs
from morphml.space import space_from_dict
from tests.worker.test_integration import (  # noqa: F401 (fixtures)
    Cluster,
    ServerInfo,
    cluster,
    sqlite_server,
)

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
MORPHML = str(Path(sys.executable).with_name("morphml"))


def readme_example() -> dict[str, Any]:
    """The JSON spec under the README's "Weight sharing (DARTS, SPOS)" heading."""
    text = (ROOT / "README.md").read_text()
    section = text.split("### Weight sharing (DARTS, SPOS)", 1)[1]
    block = re.search(r"```json\n(.*?)\n```", section, re.DOTALL)
    assert block is not None, "the README's weight-sharing section has no JSON example"
    spec: dict[str, Any] = json.loads(block.group(1))
    return spec


def submit(url: str, admin_token: str, spec_path: Path) -> int:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MORPHML_")}
    env |= {"MORPHML_SERVER": url, "MORPHML_TOKEN": admin_token}
    result = subprocess.run(
        [MORPHML, "submit", str(spec_path)], capture_output=True, text=True, env=env, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return int(result.stdout.split()[1])  # "experiment 3 (name) running"


def test_the_readme_example_searches_a_supernet_then_trains_its_cells_from_scratch(
    cluster: Cluster,  # noqa: F811 (the fixture)
    sqlite_server: ServerInfo,  # noqa: F811 (the fixture: its admin token)
    tmp_path: Path,
) -> None:
    spec = readme_example()
    spec_path = tmp_path / "darts-digits.json"
    spec_path.write_text(json.dumps(spec))
    cluster.start_worker("a", "--log-level", "DEBUG")  # DEBUG: each checkpoint upload is logged
    experiment_id = submit(cluster.url, sqlite_server[1], spec_path)
    experiment = cluster.finished(experiment_id, timeout=420)
    assert experiment.status == "completed", experiment.error

    tasks = cluster.admin.tasks(experiment_id)
    supernets = [t for t in tasks if t.candidate["meta"].get("phase") == "supernet"]
    finals = [t for t in tasks if t.candidate["meta"].get("phase") == "final"]
    assert (len(supernets), len(finals), len(tasks)) == (1, 2, 3)
    (supernet,) = supernets
    assert supernet.state == "completed" and supernet.budget == 0.0 and supernet.metrics
    assert "val_accuracy" not in supernet.metrics
    epochs = spec["optimizer"]["params"]["search"]["epochs"]
    # Every epoch reports (tests/morphml/evaluators/test_supernet.py); the worker sends the first
    # report at once and later ones at most once a second, so on a fast machine the steps after
    # the first may be merged into later ones (and the last may go with the result only).
    reported = {int(step): m for step, m in supernet.intermediate.items()}
    assert 1 in reported and set(reported) <= set(range(1, epochs + 1))
    assert all(m["epoch"] == step and "supernet_val_accuracy" in m for step, m in reported.items())
    assert cluster.workers is not None
    log = (cluster.workers.log_dir / "a.log").read_text()
    assert re.search(rf"task {supernet.id}: checkpoint of epoch \d+ uploaded", log), log[-3000:]

    space = space_from_dict(spec["search_space"])
    derived = derived_configs(space, supernet.metrics)
    finals.sort(key=lambda t: t.candidate["meta"]["rank"])
    assert [t.candidate["architecture"]["config"] for t in finals] == [d.config for d in derived]
    assert all(t.state == "completed" and t.metrics for t in finals)
    assert [t.budget for t in finals] == [float(spec["optimizer"]["params"]["final_budget"])] * 2
    for final in finals:  # trained from scratch: all its epochs, from no one's weights
        assert final.metrics and final.metrics["epochs"] == final.budget
        assert "warm_started" not in final.metrics and "resumed_from_epoch" not in final.metrics

    best = cluster.admin.best(experiment_id)
    assert best.id in {t.id for t in finals} and best.candidate["meta"]["phase"] == "final"
