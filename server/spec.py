"""The experiment spec as the library sees it: build its optimizer and pruner, or say which
field the library refused (a 422 naming it; nothing is stored)."""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from morphml.errors import MorphMLError
from morphml.evaluators import check_evaluator
from morphml.optimizers import Optimizer, make_optimizer
from morphml.optimizers.pruners import Pruner, make_pruner
from morphml.space import Space, space_from_dict
from morphml.space.limits import SpaceLimits, check_space_limits
from server.blas import one_blas_thread
from server.errors import InvalidSpecError


def build_optimizer(spec: dict[str, Any]) -> Optimizer:
    """The experiment's optimizer, fresh; library errors name the offending spec field. Every
    optimizer the server runs is built here, on the thread that then runs it: its numpy gets one
    BLAS thread."""
    one_blas_thread()
    space = cached_space(spec["search_space"])
    optimizer = spec["optimizer"]
    return make_optimizer(
        optimizer["name"],
        space,
        objectives=spec["objectives"],
        seed=spec.get("seed"),
        **optimizer["params"],
    )


_SPACES: OrderedDict[str, Space] = OrderedDict()
_SPACES_LOCK = threading.Lock()
CACHED_SPACES = 64


def cached_space(data: dict[str, Any]) -> Space:
    """The space built from its JSON, once per process: every refill builds the optimizer anew,
    and building (and validating, which samples) a space cost a quarter of a refill. Spaces are
    not changed once built (sampling takes its own random generator), so one serves every
    thread."""
    key = json.dumps(data, sort_keys=True)
    with _SPACES_LOCK:
        space = _SPACES.get(key)
        if space is not None:
            _SPACES.move_to_end(key)
            return space
    space = space_from_dict(data)
    with _SPACES_LOCK:
        _SPACES[key] = space
        while len(_SPACES) > CACHED_SPACES:
            _SPACES.popitem(last=False)
    return space


def build_pruner(spec: dict[str, Any]) -> Pruner:
    return make_pruner(spec.get("pruner"), spec["objectives"])


@dataclass(frozen=True)
class SpecLimits:
    """What one experiment may ask of the server (from the settings)."""

    space: SpaceLimits
    max_parallelism: int


def validate_spec(spec: dict[str, Any], limits: SpecLimits) -> None:
    """Refuse what the library cannot run, or what would cost more than `limits`, before
    anything is built: an unknown evaluator, a space over its limits, a space, optimizer or
    pruner the library cannot build (`spec` as stored: the request body dumped to JSON)."""
    if spec["parallelism"] > limits.max_parallelism:
        raise InvalidSpecError(
            f"parallelism: {spec['parallelism']} is over this server's limit of "
            f"{limits.max_parallelism} (MORPHML_MAX_PARALLELISM)"
        )
    try:
        check_space_limits(spec["search_space"], limits.space)
    except MorphMLError as exc:
        raise InvalidSpecError(f"{exc} (MORPHML_MAX_* settings)") from None
    evaluator = spec["evaluator"]
    try:
        # The evaluator's declared parameters, and the space against its dataset (the same
        # declarations the worker parses them with): a typo is a 422, not a run of failures.
        check_evaluator(evaluator["kind"], evaluator["params"], spec["search_space"])
        build_optimizer(spec)
        build_pruner(spec)
    except MorphMLError as exc:
        raise InvalidSpecError(str(exc)) from None
