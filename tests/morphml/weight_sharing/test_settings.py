"""SearchSettings: every field checked, errors naming it; search refuses what it cannot do."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from morphml.evaluators.base import EvaluatorError
from morphml.evaluators.datasets import Dataset
from morphml.space.space import SearchSpace
from morphml.weight_sharing import SearchSettings, search
from tests.morphml.weight_sharing.helpers import tiny_digits, tiny_space


def test_defaults_and_a_round_trip_through_a_dict() -> None:
    settings = SearchSettings()
    assert settings.method == "darts" and settings.max_skip == 2 and settings.top_k == 1
    assert SearchSettings.from_dict(settings.to_dict()) == settings
    # JSON writes 1.0 as 1: an int is taken for a float field.
    assert SearchSettings.from_dict({"lr": 1, "max_skip": None}).lr == 1.0


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"bogus": 1}, "bogus"),
        ({"method": "enas"}, "method"),
        ({"method": None}, "method"),
        ({"epochs": 0}, "epochs"),
        ({"epochs": 10**9}, "epochs"),
        ({"epochs": 2.5}, "epochs"),
        ({"epochs": True}, "epochs"),
        ({"epochs": "3"}, "epochs"),
        ({"order": 3}, "order"),
        ({"order": True}, "order"),
        ({"max_skip": -1}, "max_skip"),
        ({"max_skip": 1.0}, "max_skip"),
        ({"early_stop": "yes"}, "early_stop"),
        ({"top_k": 0}, "top_k"),
        ({"top_k": 10**6}, "top_k"),
        ({"population": 1}, "population"),
        ({"generations": -1}, "generations"),
        ({"lr": 0.0}, "lr"),
        ({"lr": float("nan")}, "lr"),
        ({"lr": float("inf")}, "lr"),
        ({"lr": "0.1"}, "lr"),
        ({"arch_lr": -1e-3}, "arch_lr"),
        ({"momentum": 1.0}, "momentum"),
        ({"weight_decay": -1.0}, "weight_decay"),
        ({"arch_weight_decay": True}, "arch_weight_decay"),
        ({"batch_size": 0}, "batch_size"),
        ({"batch_size": 10**7}, "batch_size"),
        ({"seed": -1}, "seed"),
        ({"seed": 2**64}, "seed"),
        ({"patience": 0}, "patience"),
        ({"calib_batches": -1}, "calib_batches"),
    ],
)
def test_a_bad_setting_is_a_value_error_naming_it(data: dict[str, Any], field: str) -> None:
    with pytest.raises(ValueError, match=f"^{field}:"):
        SearchSettings.from_dict(data)


def test_settings_that_are_not_a_mapping_are_refused() -> None:
    with pytest.raises(ValueError, match=r"^settings:"):
        SearchSettings.from_dict([("epochs", 1)])  # type: ignore[arg-type]


def test_search_refuses_what_it_cannot_search() -> None:
    space, data, settings = tiny_space(), tiny_digits(), SearchSettings(epochs=1)
    with pytest.raises(ValueError, match=r"^space:"):
        search(SearchSpace(name="plain"), settings, data)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^settings:"):
        search(space, {"epochs": 1}, data)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^device:"):
        search(space, settings, data, device="tpu")
    with pytest.raises(ValueError, match=r"^data:"):
        search(space, settings, "digits")  # type: ignore[arg-type]
    wrong_shape = Dataset(np.zeros((4, 1, 5, 5), np.float32), np.zeros(4, np.int64),
                          np.zeros((2, 1, 5, 5), np.float32), np.zeros(2, np.int64))  # fmt: skip
    with pytest.raises(ValueError, match=r"^data:.*input"):
        search(space, settings, wrong_shape)
    negative = Dataset(data.x_train, data.y_train - 1, data.x_val, data.y_val)
    with pytest.raises(ValueError, match=r"^data: class labels"):
        search(space, settings, negative)
    many_classes = Dataset(data.x_train, data.y_train + 5, data.x_val, data.y_val)
    with pytest.raises(ValueError, match=r"^data: 15 classes"):
        search(space, settings, many_classes)


def test_a_skip_limit_a_skip_only_space_cannot_keep_is_refused() -> None:
    with pytest.raises(ValueError, match=r"^max_skip:"):
        search(tiny_space(ops=("skip_connect",)), SearchSettings(epochs=1), tiny_digits())


@pytest.mark.parametrize("method", ["darts", "spos"])
def test_a_diverged_supernet_is_an_evaluator_error(method: str) -> None:
    data = tiny_digits()
    broken = Dataset(np.full_like(data.x_train, np.nan), data.y_train, data.x_val, data.y_val)
    with pytest.raises(EvaluatorError, match=r"diverged.*epoch 1"):
        search(tiny_space(), SearchSettings(method=method, epochs=2), broken, device="cpu")
