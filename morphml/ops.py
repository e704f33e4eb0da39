"""The node vocabulary of architectures: each op's parameters, shape rule, size and FLOPs.

Shapes exclude the batch dimension: (C, H, W) for feature maps, (F,) for flat vectors.
FLOPs are counted as multiply-accumulates (the NAS convention, e.g. NAS-Bench-201's "flops").

Parameters are part of an architecture's canonical hash, and hashes are stored task keys. A
parameter added to an existing op therefore carries `omit_default=True`: a node at its default
leaves it out, so every architecture built before the parameter existed keeps its hash.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from morphml.errors import ArchitectureError

Shape = tuple[int, ...]
Params = dict[str, Any]

ACTIVATIONS = ("relu", "gelu", "silu", "tanh", "sigmoid", "identity")
REQUIRED = object()
# A user-defined cell op's name: it is printed into exported source and dashboards.
CELL_OP_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _non_negative_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _rate(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value < 1


def _shape(value: Any) -> bool:
    return (
        isinstance(value, list | tuple) and len(value) in (1, 3) and all(map(_positive_int, value))
    )


def _optional_positive_int(value: Any) -> bool:
    return value is None or _positive_int(value)


@dataclass(frozen=True)
class ParamRule:
    """One parameter of an op: its default (or REQUIRED), a check, and what the check expects.

    `omit_default`: the normalized node leaves the parameter out when it holds its default (for
    parameters added after hashes were stored; read them with `p.get(name, default)`).
    """

    default: Any
    check: Callable[[Any], bool]
    expects: str
    omit_default: bool = False


@dataclass(frozen=True)
class OpSpec:
    """An op: its parameters, how many inputs it takes, and its shape/param/FLOP rules."""

    params: dict[str, ParamRule]
    shape: Callable[[list[Shape], Params], Shape]
    num_params: Callable[[list[Shape], Params], int] = lambda shapes, p: 0
    flops: Callable[[list[Shape], Params, Shape], int] = lambda shapes, p, out: 0
    min_inputs: int = 1
    max_inputs: int = 1


def _spatial(op: str, shape: Shape) -> tuple[int, int, int]:
    if len(shape) != 3:
        raise ArchitectureError(
            f"{op} needs a (C, H, W) feature map but gets a flat {shape}; put it before flatten"
        )
    return shape[0], shape[1], shape[2]


def _flat(op: str, shape: Shape) -> int:
    if len(shape) != 1:
        raise ArchitectureError(
            f"{op} needs a flat input but gets {shape}; add flatten or global pooling before it"
        )
    return shape[0]


def _window(op: str, size: int, kernel: int, stride: int, padding: int) -> int:
    out = (size + 2 * padding - kernel) // stride + 1
    if out < 1:
        raise ArchitectureError(f"{op}: window {kernel} does not fit a spatial size of {size}")
    return out


def conv_padding(p: Params) -> int:
    """ "Same" padding of a conv2d node: half the dilated kernel (PyTorch's `padding`)."""
    return int(p.get("dilation", 1)) * (int(p["kernel_size"]) // 2)


def _conv_shape(shapes: list[Shape], p: Params) -> Shape:
    cin, h, w = _spatial("conv2d", shapes[0])
    groups = p.get("groups", 1)
    if cin % groups or p["filters"] % groups:
        raise ArchitectureError(
            f"conv2d: groups={groups} must divide its {cin} input and {p['filters']} output "
            "channels"
        )
    k = p.get("dilation", 1) * (p["kernel_size"] - 1) + 1  # the dilated kernel's extent
    s, pad = p["stride"], conv_padding(p)
    return (p["filters"], _window("conv2d", h, k, s, pad), _window("conv2d", w, k, s, pad))


def _conv_params(shapes: list[Shape], p: Params) -> int:
    cin, k, filters = shapes[0][0], int(p["kernel_size"]), int(p["filters"])
    return cin // int(p.get("groups", 1)) * k * k * filters + (filters if p["bias"] else 0)


def _conv_flops(shapes: list[Shape], p: Params, out: Shape) -> int:
    return shapes[0][0] // int(p.get("groups", 1)) * int(p["kernel_size"]) ** 2 * math.prod(out)


def _pool_shape(op: str) -> Callable[[list[Shape], Params], Shape]:
    def shape(shapes: list[Shape], p: Params) -> Shape:
        c, h, w = _spatial(op, shapes[0])
        k, pad = p["pool_size"], p["padding"]
        s = p["stride"] or k
        return (c, _window(op, h, k, s, pad), _window(op, w, k, s, pad))

    return shape


def _global_pool_shape(op: str) -> Callable[[list[Shape], Params], Shape]:
    return lambda shapes, p: (_spatial(op, shapes[0])[0],)


def _dense_shape(op: str) -> Callable[[list[Shape], Params], Shape]:
    def shape(shapes: list[Shape], p: Params) -> Shape:
        _flat(op, shapes[0])
        return (p["units"],)

    return shape


def _add_shape(shapes: list[Shape], p: Params) -> Shape:
    if any(shape != shapes[0] for shape in shapes):
        raise ArchitectureError(f"add (residual) needs equal shapes, got {shapes}")
    return shapes[0]


def _concat_shape(shapes: list[Shape], p: Params) -> Shape:
    maps = [_spatial("concat", shape) for shape in shapes]
    if any(shape[1:] != maps[0][1:] for shape in maps):
        raise ArchitectureError(f"concat needs equal spatial sizes, got {shapes}")
    return (sum(shape[0] for shape in maps), maps[0][1], maps[0][2])


def _flatten_shape(shapes: list[Shape], p: Params) -> Shape:
    return (math.prod(shapes[0]),)


def _same_shape(shapes: list[Shape], p: Params) -> Shape:
    return shapes[0]


def _cell_op_name(value: Any) -> bool:
    return isinstance(value, str) and CELL_OP_NAME.fullmatch(value) is not None


def _input_shape(shapes: list[Shape], p: Params) -> Shape:
    return tuple(p["shape"])


_UNITS = ParamRule(REQUIRED, _positive_int, "a positive int")
_POOL = {
    "pool_size": ParamRule(2, _positive_int, "a positive int"),
    "stride": ParamRule(None, _optional_positive_int, "a positive int or null (= pool_size)"),
    "padding": ParamRule(0, _non_negative_int, "an int >= 0"),
}


def _dense_params(shapes: list[Shape], p: Params) -> int:
    units = int(p["units"])
    return shapes[0][0] * units + units


def _dense_flops(shapes: list[Shape], p: Params, out: Shape) -> int:
    return shapes[0][0] * int(p["units"])


OPS: dict[str, OpSpec] = {
    "input": OpSpec(
        {"shape": ParamRule(REQUIRED, _shape, "[C, H, W] or [F] of positive ints")},
        _input_shape,
        min_inputs=0,
        max_inputs=0,
    ),
    "conv2d": OpSpec(
        {
            "filters": ParamRule(REQUIRED, _positive_int, "a positive int"),
            "kernel_size": ParamRule(3, _positive_int, "a positive int"),
            "stride": ParamRule(1, _positive_int, "a positive int"),
            "bias": ParamRule(True, lambda v: isinstance(v, bool), "true or false"),
            # Grouped (depthwise when groups = channels) and dilated convolutions, as DARTS's
            # separable and dilated cell ops use them.
            "groups": ParamRule(1, _positive_int, "a positive int", omit_default=True),
            "dilation": ParamRule(1, _positive_int, "a positive int", omit_default=True),
        },
        _conv_shape,
        _conv_params,
        _conv_flops,
    ),
    "batchnorm": OpSpec(
        {}, _same_shape, lambda s, p: 2 * s[0][0], lambda s, p, out: math.prod(out)
    ),
    "activation": OpSpec(
        {"fn": ParamRule("relu", lambda v: v in ACTIVATIONS, f"one of {list(ACTIVATIONS)}")},
        _same_shape,
    ),
    "maxpool": OpSpec(_POOL, _pool_shape("maxpool")),
    "avgpool": OpSpec(_POOL, _pool_shape("avgpool")),
    "global_avgpool": OpSpec({}, _global_pool_shape("global_avgpool")),
    "global_maxpool": OpSpec({}, _global_pool_shape("global_maxpool")),
    "dropout": OpSpec({"rate": ParamRule(0.5, _rate, "a number in [0, 1)")}, _same_shape),
    "flatten": OpSpec({}, _flatten_shape),
    "dense": OpSpec({"units": _UNITS}, _dense_shape("dense"), _dense_params, _dense_flops),
    "output": OpSpec({"units": _UNITS}, _dense_shape("output"), _dense_params, _dense_flops),
    "add": OpSpec({}, _add_shape, min_inputs=2, max_inputs=64),
    "zero": OpSpec({}, _same_shape),
    # Channel concatenation of feature maps (DARTS concatenates a cell's nodes).
    "concat": OpSpec({}, _concat_shape, min_inputs=2, max_inputs=64),
    # A user-defined, shape-preserving op of a cell space (`custom_ops`): MorphML knows only its
    # name; a python evaluator builds it, or torch_build uses a registered factory. Its size and
    # FLOPs are unknown here and count as 0.
    "cell_op": OpSpec(
        {"name": ParamRule(REQUIRED, _cell_op_name, "an identifier of up to 64 characters")},
        _same_shape,
    ),
}

COMMUTATIVE_OPS = frozenset({"add"})
# Ops only graph builders emit (several inputs, or a cell's own op); never a sequential layer.
GRAPH_OPS = frozenset({"add", "zero", "concat", "cell_op"})
# Ops whose output channels follow their input's order one to one (elementwise or per channel):
# a permutation of their input's channels only permutes their output's.
CHANNELWISE_OPS = frozenset(
    {
        "activation",
        "batchnorm",
        "dropout",
        "maxpool",
        "avgpool",
        "global_avgpool",
        "global_maxpool",
        "flatten",
    }
)


def absorbs_channel_order(op: str, params: Params) -> bool:
    """True when a permutation of the input's channels changes nothing but which weights are
    which: an ungrouped conv2d, a dense layer, or a zero."""
    if op == "conv2d":
        return bool(params.get("groups", 1) == 1)
    return op in ("dense", "output", "zero")


def normalize_params(op: str, params: Params, where: str) -> Params:
    """Fill defaults and check every parameter of `op`; errors name `where` and the field."""
    spec = OPS.get(op)
    if spec is None:
        raise ArchitectureError(f"{where}: unknown op {op!r}; known: {sorted(OPS)}")
    unknown = set(params) - set(spec.params)
    if unknown:
        raise ArchitectureError(f"{where}: {op} has no parameter {sorted(unknown)[0]!r}")
    result: Params = {}
    for name, rule in spec.params.items():
        value = params.get(name, rule.default)
        if value is REQUIRED:
            raise ArchitectureError(f"{where}.{name}: {op} needs {name} ({rule.expects})")
        if not rule.check(value):
            raise ArchitectureError(f"{where}.{name}: expected {rule.expects}, got {value!r}")
        if rule.omit_default and value == rule.default:
            continue
        result[name] = list(value) if isinstance(value, tuple) else value
    return result
