"""`morphml artifacts`, `morphml download` and the demo's trained weights, as the real console
script against a real server and worker that train on digits."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from morphml.architecture import Architecture
from morphml.cli.processes import local_cluster
from morphml.client import Client
from morphml.evaluators.train import TrainConfig, prepare_data, validate
from tests.morphml.cli.test_cli import digits_space, run

pytestmark = pytest.mark.slow
PARAMS = {"dataset": "digits", "epochs": 1, "batch_size": 64, "lr": 0.003, "seed": 0}


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    """A server whose experiment trained three digits CNNs (weights kept: the best two)."""
    with local_cluster(tmp_path_factory.mktemp("artifacts"), workers=1, slots=2) as url:
        with Client(url) as client:
            experiment = client.create_experiment({
                "name": "weights", "search_space": digits_space().to_dict(),
                "optimizer": {"name": "random", "params": {}},
                "evaluator": {"kind": "train", "params": PARAMS},
                "budget": {"max_evaluations": 3}, "parallelism": 2, "seed": 0,
                "artifacts": {"keep": "top_k", "k": 2},
            })  # fmt: skip
            result = run(url, "watch", str(experiment.id))
            assert result.returncode == 0, result.stderr
        yield url, experiment.id


def test_artifacts_lists_the_kept_weights_best_first_with_their_value(
    trained: tuple[str, int],
) -> None:
    url, experiment_id = trained
    with Client(url) as client:
        ranked = sorted(
            client.tasks(experiment_id), key=lambda t: -(t.metrics or {})["val_accuracy"]
        )
    result = run(url, "artifacts", str(experiment_id))
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if "weights.pt" in line]
    assert [int(line.split()[0]) for line in lines] == [t.id for t in ranked[:2]]
    best = (ranked[0].metrics or {})["val_accuracy"]
    assert f"{best:.4g}" in lines[0] and "stored" in lines[0]


def test_download_best_gives_weights_the_exported_source_loads_and_that_score_again(
    trained: tuple[str, int], tmp_path: Path
) -> None:
    url, experiment_id = trained
    result = run(url, "download", "--best", str(experiment_id), "-o", "best.pt", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "sha256 checked" in result.stdout
    source = run(url, "export", str(experiment_id), "--output", "best_model.py", cwd=tmp_path)
    assert source.returncode == 0, source.stderr
    with Client(url) as client:
        best = client.best(experiment_id)
    namespace: dict[str, Any] = {}
    exec(compile((tmp_path / "best_model.py").read_text(), "best_model.py", "exec"), namespace)
    net = namespace["Net"]()
    net.load_state_dict(torch.load(tmp_path / "best.pt", weights_only=True))
    assert abs(score(net, best.candidate) - (best.metrics or {})["val_accuracy"]) <= 0.005


def score(net: torch.nn.Module, candidate: dict[str, Any]) -> float:
    architecture = Architecture.from_dict(candidate["architecture"])
    data = prepare_data(architecture, TrainConfig.from_params(PARAMS, None))
    return validate(net, torch.from_numpy(data.x_val), torch.from_numpy(data.y_val))[1]


def test_download_task_name_into_the_current_directory_and_its_mistakes(
    trained: tuple[str, int], tmp_path: Path
) -> None:
    url, experiment_id = trained
    with Client(url) as client:
        (kept, *_) = [a for a in client.artifacts(experiment_id) if a.kind == "weights"]
    result = run(url, "download", str(kept.task_id), "weights.pt", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "weights.pt").stat().st_size == kept.size
    mistakes = {
        ("download",): "give TASK NAME, or --best EXPERIMENT",
        ("download", "99999", "weights.pt"): "404 task 99999",
        ("download", str(kept.task_id), "../x"): "bad artifact name",
    }
    for args, message in mistakes.items():
        answer = run(url, *args, cwd=tmp_path)
        assert answer.returncode == 2 and message in answer.stderr, (args, answer.stderr)
        assert answer.stderr.count("\n") == 1  # one line, no traceback


def test_the_mnist_demo_ends_with_the_best_models_trained_weights(tmp_path: Path) -> None:
    args = ["demo", "--evaluations", "2", "--workers", "1", "--out", "out"]
    result = run("http://127.0.0.1:9", *args, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    (run_dir,) = (tmp_path / "out").iterdir()
    assert "downloaded the best model's trained weights" in result.stdout
    assert (run_dir / "best_model.pt").exists()
    assert "best_model.pt" in (run_dir / "best_model.py").read_text().splitlines()[0]
    experiment = json.loads((run_dir / "experiment.json").read_text())
    namespace: dict[str, Any] = {}
    exec(compile((run_dir / "best_model.py").read_text(), "best_model.py", "exec"), namespace)
    net = namespace["BestNet"]()
    net.load_state_dict(torch.load(run_dir / "best_model.pt", weights_only=True))
    assert experiment["best"]["task_id"] >= 1


def test_export_weights_downloads_the_tasks_weights_and_the_source_says_how_to_load_them(
    trained: tuple[str, int], tmp_path: Path
) -> None:
    url, experiment_id = trained
    with Client(url) as client:
        (kept, *_) = [a for a in client.artifacts(experiment_id) if a.kind == "weights"]
        (task,) = [t for t in client.tasks(experiment_id) if t.id == kept.task_id]
    args = ["export", str(experiment_id), "--task", str(task.id), "--weights", "net.pt"]
    result = run(url, *args, cwd=tmp_path)  # the source on stdout, the note on stderr
    assert result.returncode == 0, result.stderr
    assert "sha256 checked" in result.stderr and "sha256" not in result.stdout
    assert "net.load_state_dict(torch.load('net.pt'" in result.stdout
    namespace: dict[str, Any] = {}
    exec(compile(result.stdout, "model.py", "exec"), namespace)
    net = namespace["Net"]()
    net.load_state_dict(torch.load(tmp_path / "net.pt", weights_only=True))
    assert abs(score(net, task.candidate) - (task.metrics or {})["val_accuracy"]) <= 0.005
    missing = [
        t.id for t in client_tasks(url, experiment_id) if t.id not in weighted(url, experiment_id)
    ]
    answer = run(url, "export", str(experiment_id), "--task", str(missing[0]), "--weights", "x.pt",
                 cwd=tmp_path)  # fmt: skip
    assert answer.returncode == 2 and "has no weights" in answer.stderr
    assert not (tmp_path / "x.pt").exists()


def client_tasks(url: str, experiment_id: int) -> list[Any]:
    with Client(url) as client:
        return client.tasks(experiment_id)


def weighted(url: str, experiment_id: int) -> set[int]:
    with Client(url) as client:
        return {a.task_id for a in client.artifacts(experiment_id) if a.kind == "weights"}
