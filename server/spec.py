"""The experiment spec as the library sees it: build its optimizer and pruner, or say which
field the library refused (a 422 naming it; nothing is stored)."""

from __future__ import annotations

from typing import Any

from morphml.errors import MorphMLError
from morphml.evaluators import EVALUATOR_KINDS
from morphml.optimizers import Optimizer, make_optimizer
from morphml.optimizers.pruners import Pruner, make_pruner
from morphml.space import space_from_dict
from server.errors import InvalidSpecError


def build_optimizer(spec: dict[str, Any]) -> Optimizer:
    """The experiment's optimizer, fresh; library errors name the offending spec field."""
    space = space_from_dict(spec["search_space"])
    optimizer = spec["optimizer"]
    return make_optimizer(
        optimizer["name"],
        space,
        objectives=spec["objectives"],
        seed=spec.get("seed"),
        **optimizer["params"],
    )


def build_pruner(spec: dict[str, Any]) -> Pruner:
    return make_pruner(spec.get("pruner"), spec["objectives"])


def validate_spec(spec: dict[str, Any]) -> None:
    """Refuse what the library cannot run: an unknown evaluator, a space, optimizer or pruner
    it cannot build (`spec` as stored: the request body dumped to JSON)."""
    kind = spec["evaluator"]["kind"]
    if kind not in EVALUATOR_KINDS:
        raise InvalidSpecError(
            f"evaluator.kind: unknown kind {kind!r}; known: {sorted(EVALUATOR_KINDS)}"
        )
    try:
        build_optimizer(spec)
        build_pruner(spec)
    except MorphMLError as exc:
        raise InvalidSpecError(str(exc)) from None
