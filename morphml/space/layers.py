"""The `Layer` builders of the sequential DSL and the elements they make.

`Layer.conv2d(filters=[32, 64], kernel_size=[3, 5])`: a list is a categorical choice, an
`IntRange`/`FloatRange` a range, anything else a constant. `optional=True` makes a layer that the
search may leave out; `Layer.repeat(..., depth=[1, 2, 3])` repeats a block a chosen number of
times; `Layer.residual(...)` adds the block's input to its output (a skip connection).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeAlias

from morphml.errors import SpaceError
from morphml.ops import ACTIVATIONS, GRAPH_OPS, OPS, REQUIRED
from morphml.space.domains import Domain, as_domain, possible_values


@dataclass(frozen=True)
class LayerSpec:
    """One layer: an op whose parameters are constants or domains."""

    op: str
    params: dict[str, Any]
    optional: bool = False

    def domain(self, name: str) -> Domain | None:
        if self.op == "input":  # the input shape is a list but never a choice
            return None
        return as_domain(name, self.params[name])

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.op}
        for name, value in self.params.items():
            domain = self.domain(name)
            out[name] = domain.to_dict() if domain else _plain(value)
        if self.optional:
            out["optional"] = True
        return out


@dataclass(frozen=True)
class Repeat:
    """A block of elements repeated `depth` times; each repetition chooses its own values."""

    layers: tuple[Element, ...]
    depth: Any

    def to_dict(self) -> dict[str, Any]:
        domain = as_domain("depth", self.depth)
        depth = domain.to_dict() if domain else self.depth
        return {"type": "repeat", "depth": depth, "layers": [e.to_dict() for e in self.layers]}


@dataclass(frozen=True)
class Residual:
    """A block whose output is added to its input; both must have the same shape."""

    layers: tuple[Element, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"type": "residual", "layers": [e.to_dict() for e in self.layers]}


Element: TypeAlias = LayerSpec | Repeat | Residual


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def make_layer(op: str, params: dict[str, Any], optional: bool, where: str) -> LayerSpec:
    """Check a layer's op and every value its parameters may take; errors name `where`."""
    spec = OPS.get(op)
    if spec is None or op in GRAPH_OPS:
        known = sorted(set(OPS) - GRAPH_OPS | {"repeat", "residual"})
        raise SpaceError(f"{where}.type: unknown layer {op!r}; known: {known}")
    for name in params:
        if name not in spec.params:
            raise SpaceError(f"{where}.{name}: {op} has no parameter {name!r}")
    layer = LayerSpec(op, dict(params), optional)
    for name, rule in spec.params.items():
        if name not in params:
            if rule.default is REQUIRED:
                raise SpaceError(f"{where}.{name}: {op} needs {name} ({rule.expects})")
            continue
        _check_values(layer, name, f"{where}.{name}", rule.check, rule.expects)
    return layer


def _check_values(layer: LayerSpec, name: str, where: str, check: Any, expects: str) -> None:
    value = layer.params[name]
    values = [value] if layer.op == "input" else possible_values(where, value)
    for value in values:
        if not check(value):
            raise SpaceError(f"{where}: expected {expects}, got {value!r}")


class Layer:
    """Builders of the sequential DSL; each returns an element for `SearchSpace.add_layers`."""

    @staticmethod
    def input(shape: tuple[int, ...] | list[int]) -> LayerSpec:
        return make_layer("input", {"shape": list(shape)}, False, "input")

    @staticmethod
    def conv2d(
        filters: Any,
        kernel_size: Any = 3,
        stride: Any = 1,
        bias: Any = True,
        optional: bool = False,
    ) -> LayerSpec:
        params = {"filters": filters, "kernel_size": kernel_size, "stride": stride, "bias": bias}
        return make_layer("conv2d", params, optional, "conv2d")

    @staticmethod
    def batchnorm(optional: bool = False) -> LayerSpec:
        return make_layer("batchnorm", {}, optional, "batchnorm")

    @staticmethod
    def activation(fn: Any = "relu", optional: bool = False) -> LayerSpec:
        """An activation, or a choice of them: `Layer.activation(["relu", "gelu", "silu"])`."""
        return make_layer("activation", {"fn": fn}, optional, "activation")

    @staticmethod
    def relu(optional: bool = False) -> LayerSpec:
        return Layer.activation("relu", optional)

    @staticmethod
    def gelu(optional: bool = False) -> LayerSpec:
        return Layer.activation("gelu", optional)

    @staticmethod
    def maxpool(pool_size: Any = 2, stride: Any = None, optional: bool = False) -> LayerSpec:
        params = {"pool_size": pool_size, "stride": stride}
        return make_layer("maxpool", params, optional, "maxpool")

    @staticmethod
    def avgpool(pool_size: Any = 2, stride: Any = None, optional: bool = False) -> LayerSpec:
        params = {"pool_size": pool_size, "stride": stride}
        return make_layer("avgpool", params, optional, "avgpool")

    @staticmethod
    def global_avgpool() -> LayerSpec:
        return make_layer("global_avgpool", {}, False, "global_avgpool")

    @staticmethod
    def global_maxpool() -> LayerSpec:
        return make_layer("global_maxpool", {}, False, "global_maxpool")

    @staticmethod
    def dropout(rate: Any = 0.5, optional: bool = False) -> LayerSpec:
        return make_layer("dropout", {"rate": rate}, optional, "dropout")

    @staticmethod
    def flatten() -> LayerSpec:
        return make_layer("flatten", {}, False, "flatten")

    @staticmethod
    def dense(units: Any, optional: bool = False) -> LayerSpec:
        return make_layer("dense", {"units": units}, optional, "dense")

    @staticmethod
    def output(units: int) -> LayerSpec:
        return make_layer("output", {"units": units}, False, "output")

    @staticmethod
    def repeat(*layers: Element, depth: Any) -> Repeat:
        """Repeat `layers` a chosen number of times: `depth=[1, 2, 3]` or `IntRange(1, 4)`."""
        check_depth(depth, "repeat.depth")
        if not layers:
            raise SpaceError("repeat.layers: a repeated block needs at least one layer")
        return Repeat(tuple(layers), depth)

    @staticmethod
    def residual(*layers: Element) -> Residual:
        """`x + block(x)`: the block must keep the shape of its input."""
        if not layers:
            raise SpaceError("residual.layers: a residual block needs at least one layer")
        return Residual(tuple(layers))


def check_depth(depth: Any, where: str) -> None:
    for value in possible_values(where, depth):
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise SpaceError(f"{where}: expected an int >= 0, got {value!r}")


__all__ = ["ACTIVATIONS", "Element", "Layer", "LayerSpec", "Repeat", "Residual"]
