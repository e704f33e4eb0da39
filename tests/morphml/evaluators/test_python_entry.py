"""The `python` evaluator runs a user function only when its module is on the allow-list."""

from __future__ import annotations

from typing import Any

import pytest

from morphml import Layer, SearchSpace
from morphml.evaluators import EvaluatorError, get_evaluator
from morphml.evaluators.python_entry import is_allowed

ARCH = SearchSpace("t").add_layers(Layer.input(shape=(4,)), Layer.output(units=2)).sample(0)


def user_function(
    architecture: Any, budget: float | None, params: dict[str, Any], report: Any
) -> dict[str, float]:
    report({"step": 1})
    return {"budget": budget or 0.0, "scale": float(params["scale"])}


def test_an_allowed_function_runs_with_the_remaining_params(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MORPHML_ALLOW", "tests.morphml.evaluators")
    reports: list[dict[str, float]] = []
    params = {"function": f"{__name__}:user_function", "scale": 2}
    assert get_evaluator("python")(ARCH, 4.0, params, reports.append) == {
        "budget": 4.0,
        "scale": 2.0,
    }
    assert reports == [{"step": 1}]


def test_nothing_is_allowed_by_default() -> None:
    with pytest.raises(EvaluatorError, match="not on this worker's allow-list \\(empty\\)"):
        get_evaluator("python")(ARCH, None, {"function": f"{__name__}:user_function"}, print)


def test_a_missing_function_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MORPHML_ALLOW", "tests")
    with pytest.raises(EvaluatorError, match="is not a callable"):
        get_evaluator("python")(ARCH, None, {"function": f"{__name__}:nope"}, print)


@pytest.mark.parametrize(
    ("module", "allowed", "expected"),
    [("pkg", ["pkg"], True), ("pkg.sub.mod", ["pkg"], True), ("pkgx", ["pkg"], False),
     ("pk", ["pkg"], False), ("pkg", [], False), ("b.c", ["a", "b.c"], True)],
)  # fmt: skip
def test_prefixes_match_whole_module_names(module: str, allowed: list[str], expected: bool) -> None:
    assert is_allowed(module, allowed) is expected
