"""Checks that keep a value storable and serialisable as JSON, for the REST contract's models.

Python's `json` accepts `NaN`, `Infinity` and lone UTF-16 surrogates ("\\ud800"), and nests as
deep as its input; a stored value with any of them breaks every later answer that shows it.
"""

from __future__ import annotations

import math
from typing import Any

MAX_DEPTH = 32
# Larger than any real metric (FLOPs, parameter counts, latencies); a forged 1e308 is not.
MAX_METRIC_MAGNITUDE = 1e15


def no_lone_surrogates(text: str) -> str:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("contains a lone UTF-16 surrogate, which is not valid text") from None
    return text


def visible_ascii(text: str) -> str:
    if not all("!" <= char <= "~" for char in text):
        raise ValueError("must be printable ASCII")
    return text


def bounded_metric(value: float) -> float:
    if abs(value) > MAX_METRIC_MAGNITUDE:
        raise ValueError(f"out of range: |value| must be at most {MAX_METRIC_MAGNITUDE:g}")
    return value


def json_safe(value: dict[str, Any]) -> dict[str, Any]:
    """`value` unchanged, or ValueError naming the first problem and where it is."""
    stack: list[tuple[Any, str, int]] = [(value, "", 1)]
    while stack:  # iterative: a hostile value must not exhaust Python's recursion limit
        item, where, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise ValueError(f"{where or 'value'}: nested deeper than {MAX_DEPTH} levels")
        _check_leaf(item, where)
        stack.extend(_children(item, where, depth))
    return value


def _children(item: Any, where: str, depth: int) -> list[tuple[Any, str, int]]:
    if isinstance(item, dict):
        for key in item:
            _check_leaf(key, f"{where}.{key!r}".lstrip("."))
        return [(child, f"{where}.{key}".lstrip("."), depth + 1) for key, child in item.items()]
    if isinstance(item, list | tuple):
        return [(child, f"{where}[{index}]", depth + 1) for index, child in enumerate(item)]
    return []


def _check_leaf(item: Any, where: str) -> None:
    if isinstance(item, float) and not math.isfinite(item):
        raise ValueError(f"{where or 'value'}: {item} is not valid JSON (NaN or Infinity)")
    if isinstance(item, str):
        try:
            no_lone_surrogates(item)
        except ValueError as exc:
            raise ValueError(f"{where or 'value'}: {exc}") from None
