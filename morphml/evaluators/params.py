"""What each evaluator accepts, declared once: read by the worker-side evaluators to parse their
params, and by `check_evaluator`, which the server calls when an experiment is submitted, so a
typo (`"epoch"`), an unknown dataset (`"digit"`) or a search space whose input does not fit the
dataset is refused at submit time instead of failing every task on the workers.

Every error is an `EvaluatorError` (a `MorphMLError`) whose message starts with the field it
refuses: `evaluator.params.epochs: expected an int >= 1, got 0`.

This module imports neither torch nor numpy: the server imports it.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, NoReturn

from morphml.errors import MorphMLError
from morphml.evaluators.base import EVALUATOR_KINDS, EvaluatorError
from morphml.space import CellSpace, Space, space_from_dict
from morphml.space.cell import NB201_OPS

ParamType = Literal["int", "number", "str"]
_DEVICE = re.compile(r"auto|cpu|cuda(:\d+)?|mps")
_FUNCTION = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*")


@dataclass(frozen=True)
class DatasetInfo:
    """What a known dataset's examples look like: shape (channels first) and classes."""

    shape: tuple[int, ...]
    classes: int

    def label(self) -> str:
        return "x".join(map(str, self.shape))


# The image datasets `train` and `proxy` read (morphml.evaluators.datasets loads them; a test
# checks these shapes against the loaded arrays). A path ending in `.npz` is accepted too; its
# shape is known only on the worker.
IMAGE_DATASETS: dict[str, DatasetInfo] = {
    "mnist": DatasetInfo((1, 28, 28), 10),
    "digits": DatasetInfo((1, 8, 8), 10),
}
# NAS-Bench-201's tables (`tabular`): looked up by cell, whatever the space's input.
NB201_DATASETS = ("cifar10", "cifar100", "imagenet")


@dataclass(frozen=True)
class Param:
    """One evaluator parameter: its type, default, range or choices."""

    name: str
    type: ParamType
    default: Any = None
    nullable: bool = False
    ge: float | None = None  # value >= ge
    gt: float | None = None  # value > gt
    choices: tuple[str, ...] = ()
    npz: bool = False  # a str that may also be a path ending in .npz
    pattern: re.Pattern[str] | None = None
    doc: str = ""

    def parse(self, value: Any) -> Any:
        """The value, checked (numbers as float, ints as int); EvaluatorError naming the field."""
        if value is None:
            if self.nullable:
                return None
            self._refuse(value)
        if self.type == "str":
            return self._parse_str(value)
        if isinstance(value, bool) or not isinstance(value, int | float):
            self._refuse(value)
        if self.type == "int" and not isinstance(value, int):
            if not (isinstance(value, float) and value.is_integer()):
                self._refuse(value)
            value = int(value)
        if not math.isfinite(value):
            self._refuse(value)
        if (self.ge is not None and value < self.ge) or (self.gt is not None and value <= self.gt):
            self._refuse(value)
        return value if self.type == "int" else float(value)

    def _parse_str(self, value: Any) -> str:
        if not isinstance(value, str):
            self._refuse(value)
        if self.choices and value not in self.choices and not (self.npz and value.endswith(".npz")):
            close = difflib.get_close_matches(value, self.choices, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"expected {self.expects()}"
            raise EvaluatorError(f"evaluator.params.{self.name}: unknown {value!r}; {hint}")
        if self.pattern is not None and not self.pattern.fullmatch(value):
            self._refuse(value)
        return value

    def expects(self) -> str:
        """What the parameter takes, in words (errors and the README table use it)."""
        if self.choices:
            words = " or ".join(", ".join(self.choices).rsplit(", ", 1))
            text = f"one of {words}" + (" or a .npz path" if self.npz else "")
        elif self.type == "str":
            text = "a string" if self.pattern is None else self.doc
        else:
            text = "an int" if self.type == "int" else "a number"
            if self.ge is not None:
                text += f" >= {self.ge:g}"
            if self.gt is not None:
                text += f" > {self.gt:g}"
        return text + (" or null" if self.nullable else "")

    def _refuse(self, value: Any) -> NoReturn:
        shown = repr(value)
        shown = shown if len(shown) <= 24 else shown[:23] + "…"
        raise EvaluatorError(
            f"evaluator.params.{self.name}: expected {self.expects()}, got {shown}"
        )


@dataclass(frozen=True)
class EvaluatorParams:
    """Every parameter one evaluator kind takes; `open` kinds pass unknown keys on (python)."""

    kind: str
    params: tuple[Param, ...]
    open: bool = False

    def names(self) -> list[str]:
        return [p.name for p in self.params]

    def parse(self, params: Mapping[str, Any] | None) -> dict[str, Any]:
        """The params checked, with every default filled in (unknown keys kept when `open`)."""
        if params is None:
            params = {}
        if not isinstance(params, Mapping):
            raise EvaluatorError(
                f"evaluator.params: expected an object, got {type(params).__name__}"
            )
        declared = {p.name: p for p in self.params}
        parsed: dict[str, Any] = {} if not self.open else dict(params)
        for key in params:
            if key not in declared and not self.open:
                raise EvaluatorError(self._unknown(str(key)))
        for param in self.params:
            if param.name in params:
                parsed[param.name] = param.parse(params[param.name])
            elif param.default is None and not param.nullable:
                raise EvaluatorError(f"evaluator.params.{param.name}: required, {param.expects()}")
            else:
                parsed[param.name] = param.default
        return parsed

    def _unknown(self, key: str) -> str:
        close = difflib.get_close_matches(key, self.names(), n=1)
        names = ", ".join(self.names())
        hint = f"did you mean {close[0]!r}?" if close else f"{self.kind} takes {names}"
        return f"evaluator.params.{key}: unknown; {hint}"


def _seed(default: int | None) -> Param:
    return Param("seed", "int", default, nullable=default is None, ge=0, doc="random seed")


# Read by the worker agent for every kind: fail (not retried) a task that runs longer.
TIMEOUT = Param("timeout_seconds", "number", None, nullable=True, gt=0, doc="task time limit")
DEVICE = Param("device", "str", "auto", pattern=_DEVICE, doc="auto, cpu, mps, cuda or cuda:N")


def _image_dataset() -> Param:
    return Param("dataset", "str", "digits", choices=tuple(IMAGE_DATASETS), npz=True)


EVALUATOR_PARAMS: dict[str, EvaluatorParams] = {
    "train": EvaluatorParams(
        "train",
        (
            _image_dataset(),
            Param("epochs", "int", 1, ge=1, doc="epochs when the task has no budget"),
            Param("optimizer", "str", "adam", choices=("adam", "adamw", "sgd")),
            Param("lr", "number", None, nullable=True, gt=0, doc="1e-3 for Adam, 0.05 for SGD"),
            Param("momentum", "number", 0.9, ge=0, doc="SGD momentum"),
            Param("batch_size", "int", 64, ge=1),
            Param("weight_decay", "number", 0.0, ge=0),
            _seed(0),
            Param("train_size", "int", None, nullable=True, ge=1, doc="random training subset"),
            Param("val_size", "int", None, nullable=True, ge=1, doc="random validation subset"),
            DEVICE,
            TIMEOUT,
            Param(
                "data_cache",
                "str",
                "device",
                choices=("device", "off"),
                doc="keep the prepared tensors on the device for the next task of a warm process",
            ),
        ),
    ),
    "proxy": EvaluatorParams(
        "proxy",
        (
            _image_dataset(),
            Param("batch_size", "int", 64, ge=2),
            _seed(0),
            DEVICE,
            TIMEOUT,
        ),
    ),
    "tabular": EvaluatorParams(
        "tabular",
        (
            Param("dataset", "str", "cifar10", choices=NB201_DATASETS),
            _seed(None),
            Param("sleep_scale", "number", 0.0, ge=0, doc="sleep this share of the train time"),
            TIMEOUT,
        ),
    ),
    "python": EvaluatorParams(
        "python",
        (
            Param("function", "str", pattern=_FUNCTION, doc="e.g. 'package.module:function'"),
            TIMEOUT,
        ),
        open=True,
    ),
}


def evaluator_params(kind: str) -> EvaluatorParams:
    """The declared parameters of `kind`; EvaluatorError (naming `evaluator.kind`) if unknown."""
    declared = EVALUATOR_PARAMS.get(kind)
    if declared is None:
        raise EvaluatorError(
            f"evaluator.kind: unknown kind {kind!r}; known: {sorted(EVALUATOR_KINDS)}"
        )
    return declared


def parse_params(kind: str, params: Mapping[str, Any] | None) -> dict[str, Any]:
    """`kind`'s params checked, defaults filled in: what each evaluator runs with."""
    return evaluator_params(kind).parse(params)


def check_evaluator(
    kind: str,
    params: Mapping[str, Any] | None,
    space: Mapping[str, Any] | Space | None = None,
) -> None:
    """Refuse an evaluator a worker could not run: an unknown kind, an unknown, mistyped or
    out-of-range parameter, a missing required one, or (given the search space, as its dict or
    a `Space`) a space the evaluator cannot evaluate: an input shape or class count that does
    not fit a known dataset, a `tabular` evaluator on anything but a NAS-Bench-201 cell, or a
    `train` / `proxy` evaluator on a cell space with user-defined ops.

    Raises `EvaluatorError` (a `morphml.errors.MorphMLError`) whose message starts with the
    offending field (`evaluator.params.epochs: ...`). A space that cannot be built at all is left
    to the space's own validation (no error here). Imports neither torch nor numpy.
    """
    parsed = parse_params(kind, params)
    built = _space(space)
    if built is None:
        return
    if kind == "tabular":
        _check_nb201_cell(built)
    elif kind in ("train", "proxy"):
        if isinstance(built, CellSpace) and built.custom_ops:  # only user code can build them
            raise EvaluatorError(
                f"search_space.custom_ops: {kind} builds its models with PyTorch and cannot "
                f"build user ops {list(built.custom_ops)}; use a python evaluator"
            )
        _check_dataset_fits(kind, parsed["dataset"], built)


def _space(space: Mapping[str, Any] | Space | None) -> Space | None:
    if space is None or isinstance(space, Space):
        return space
    try:
        return space_from_dict(dict(space))
    except MorphMLError:
        return None  # the space's own validation names what is wrong with it


def _check_nb201_cell(space: Space) -> None:
    if (
        not isinstance(space, CellSpace)
        or not space.nb201_form
        or space.num_nodes != 4
        or not set(space.ops) <= set(NB201_OPS)
    ):
        raise EvaluatorError(
            "search_space: tabular needs a 4-node NAS-Bench-201 cell space (the dense form: "
            "no inputs_per_node, cell_inputs, node_aggregation, cell_output or custom_ops)"
        )


def _check_dataset_fits(kind: str, dataset: str, space: Space) -> None:
    info = IMAGE_DATASETS.get(dataset)
    if info is None:  # a .npz path: only the worker can read it
        return
    try:
        architecture = space.sample(0)
    except MorphMLError:
        return
    shape = tuple(architecture.input_shape)
    if math.prod(shape) != math.prod(info.shape):
        raise EvaluatorError(
            f"evaluator.params.dataset: {dataset} is {info.label()}, "
            f"the space takes {'x'.join(map(str, shape))}"
        )
    outputs = architecture.output_shape[0]
    if kind == "train" and outputs < info.classes:
        raise EvaluatorError(
            f"evaluator.params.dataset: {dataset} has {info.classes} classes, "
            f"the space outputs {outputs}"
        )
