"""`SearchSpace`: a sequential layer DSL with choices, optional layers, repeats and residuals."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from morphml.architecture import Architecture, Node
from morphml.errors import SpaceError
from morphml.space.base import Resolver, Space
from morphml.space.domains import Choice, Domain, as_domain
from morphml.space.layers import Element, LayerSpec, Repeat, Residual, check_depth, make_layer

ENABLED = Choice((False, True))


class _Emitter:
    """Collects the nodes of one build, naming them n0, n1, ..."""

    def __init__(self) -> None:
        self.nodes: list[Node] = []

    def emit(self, op: str, params: dict[str, Any], inputs: tuple[str, ...]) -> str:
        node_id = f"n{len(self.nodes)}"
        self.nodes.append(Node(node_id, op, params, inputs))
        return node_id


class SearchSpace(Space):
    """`SearchSpace("cnn").add_layers(Layer.input(...), ..., Layer.output(units=10))`.

    Variables are keyed by position: "2.filters" is layer 2's filters, "4.enabled" whether optional
    layer 4 is on, "5.depth" a repeat's depth and "5.1.0.units" layer 0 of its repetition 1.
    """

    def __init__(self, name: str, layers: Sequence[Element] = ()) -> None:
        if not isinstance(name, str) or not name:
            raise SpaceError("name: a search space needs a non-empty name")
        self.name = name
        self.layers: list[Element] = list(layers)

    def add_layers(self, *layers: Element) -> SearchSpace:
        for layer in layers:
            if not isinstance(layer, LayerSpec | Repeat | Residual):
                raise SpaceError(f"layers[{len(self.layers)}]: not a Layer, got {layer!r}")
            self.layers.append(layer)
        return self

    def validate(self) -> None:
        first, last = (self.layers[0], self.layers[-1]) if self.layers else (None, None)
        if not isinstance(first, LayerSpec) or first.op != "input":
            raise SpaceError("layers[0]: a search space must start with Layer.input(shape=...)")
        if not isinstance(last, LayerSpec) or last.op != "output" or last.optional:
            raise SpaceError(
                f"layers[{len(self.layers) - 1}]: must end with Layer.output(units=...)"
            )
        for index, layer in enumerate(self.layers[1:-1], start=1):
            if isinstance(layer, LayerSpec) and layer.op in ("input", "output"):
                raise SpaceError(f"layers[{index}]: {layer.op} may only be the first/last layer")
        super().validate()

    def _build(self, resolve: Resolver) -> Architecture:
        emitter = _Emitter()
        _build_block(self.layers, "", "", resolve, emitter)
        return Architecture(emitter.nodes, config=resolve.config, space=self.name)

    def variables(self) -> dict[str, Domain]:
        found: dict[str, Domain] = {}
        _collect_variables(self.layers, "", found)
        return found

    def size(self) -> float:
        return _block_size(self.layers)

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": "sequential",
            "name": self.name,
            "layers": [layer.to_dict() for layer in self.layers],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SearchSpace:
        raw_layers = data.get("layers")
        if not isinstance(raw_layers, list):
            raise SpaceError("layers: expected a list of layers")
        space = cls(data.get("name", ""), _elements_from_dicts(raw_layers, "layers"))
        space.validate()
        return space


def _build_block(
    elements: Sequence[Element], prefix: str, cursor: str, resolve: Resolver, out: _Emitter
) -> str:
    for index, element in enumerate(elements):
        key = f"{prefix}{index}"
        if isinstance(element, LayerSpec):
            cursor = _build_layer(element, key, cursor, resolve, out)
        elif isinstance(element, Repeat):
            for rep in range(_resolve_value(element.depth, f"{key}.depth", resolve)):
                cursor = _build_block(element.layers, f"{key}.{rep}.", cursor, resolve, out)
        else:
            start = cursor
            cursor = _build_block(element.layers, f"{key}.", cursor, resolve, out)
            if cursor != start:
                cursor = out.emit("add", {}, (start, cursor))
    return cursor


def _build_layer(layer: LayerSpec, key: str, cursor: str, resolve: Resolver, out: _Emitter) -> str:
    if layer.optional and not resolve(f"{key}.enabled", ENABLED):
        return cursor
    if layer.op == "input":
        return out.emit("input", dict(layer.params), ())
    params = {name: _resolve_value(v, f"{key}.{name}", resolve) for name, v in layer.params.items()}
    return out.emit(layer.op, params, (cursor,))


def _resolve_value(value: Any, key: str, resolve: Resolver) -> Any:
    domain = as_domain(key, value)
    return value if domain is None else resolve(key, domain)


def _walk(
    elements: Sequence[Element], prefix: str, visit: Callable[[str, str, Domain], None]
) -> None:
    """Call `visit(key, field, domain)` for every variable the elements may read."""
    for index, element in enumerate(elements):
        key = f"{prefix}{index}"
        if isinstance(element, LayerSpec):
            if element.optional:
                visit(key, "enabled", ENABLED)
            for name in element.params:
                domain = element.domain(name)
                if domain is not None:
                    visit(key, name, domain)
        elif isinstance(element, Repeat):
            depth = as_domain("depth", element.depth)
            if depth is not None:
                visit(key, "depth", depth)
            for rep in range(max(_depth_values(element.depth))):
                _walk(element.layers, f"{key}.{rep}.", visit)
        else:
            _walk(element.layers, f"{key}.", visit)


def _collect_variables(elements: Sequence[Element], prefix: str, found: dict[str, Domain]) -> None:
    def visit(key: str, field: str, domain: Domain) -> None:
        found[f"{key}.{field}"] = domain

    _walk(elements, prefix, visit)


def _depth_values(depth: Any) -> list[int]:
    domain = as_domain("depth", depth)
    if domain is None:
        return [int(depth)]
    if isinstance(domain, Choice):
        return [int(v) for v in domain.options]
    return list(range(int(domain.low), int(domain.high) + 1))


def _block_size(elements: Sequence[Element]) -> float:
    size = 1.0
    for element in elements:
        if isinstance(element, LayerSpec):
            layer_size = math.prod(
                domain.size() for name in element.params if (domain := element.domain(name))
            )
            size *= layer_size + 1 if element.optional else layer_size
        elif isinstance(element, Repeat):
            inner = _block_size(element.layers)
            size *= sum(inner**depth for depth in _depth_values(element.depth))
        else:
            size *= _block_size(element.layers)
    return size


def _elements_from_dicts(raw: list[Any], where: str) -> list[Element]:
    return [_element_from_dict(item, f"{where}[{i}]") for i, item in enumerate(raw)]


def _element_from_dict(raw: Any, where: str) -> Element:
    if not isinstance(raw, dict) or not isinstance(raw.get("type"), str):
        raise SpaceError(f"{where}: expected an object with a 'type'")
    fields = {k: v for k, v in raw.items() if k not in ("type", "optional")}
    kind = raw["type"]
    if kind in ("repeat", "residual"):
        inner = fields.get("layers")
        if not isinstance(inner, list) or not inner:
            raise SpaceError(f"{where}.layers: a {kind} block needs a non-empty list of layers")
        elements = tuple(_elements_from_dicts(inner, f"{where}.layers"))
        if kind == "residual":
            return Residual(elements)
        check_depth(fields.get("depth"), f"{where}.depth")
        return Repeat(elements, fields["depth"])
    optional = raw.get("optional", False)
    if not isinstance(optional, bool):
        raise SpaceError(f"{where}.optional: expected true or false")
    return make_layer(kind, fields, optional, where)
