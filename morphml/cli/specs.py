"""Read an experiment spec from JSON, YAML, or a Python file that defines `experiment`/`space`."""

from __future__ import annotations

import json
import runpy
from pathlib import Path
from typing import Any

from morphml.errors import MorphMLError
from morphml.space.base import Space


class SpecError(MorphMLError):
    """The spec file is missing, unreadable or not a spec."""


def load_spec(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise SpecError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix == ".py":
        return _from_python(path)
    text = path.read_text()
    try:
        if suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except (ValueError, ImportError) as exc:  # yaml.YAMLError is a ValueError subclass
        raise SpecError(f"{path}: cannot parse: {exc}") from None
    if not isinstance(data, dict):
        raise SpecError(f"{path}: the spec must be an object (a mapping)")
    return data


def _from_python(path: Path) -> dict[str, Any]:
    """Run the file; it defines `experiment` (a dict) and/or `space` (a SearchSpace)."""
    try:
        namespace = runpy.run_path(str(path))
    except Exception as exc:  # a user file may raise anything; report it as one line
        raise SpecError(f"{path}: {type(exc).__name__}: {exc}") from None
    experiment = dict(namespace.get("experiment") or {})
    space = namespace.get("space")
    if isinstance(space, Space):
        experiment.setdefault("search_space", space.to_dict())
        experiment.setdefault("name", space.name)
    if isinstance(experiment.get("search_space"), Space):
        experiment["search_space"] = experiment["search_space"].to_dict()
    if "search_space" not in experiment:
        raise SpecError(f"{path}: define `space = SearchSpace(...)` or `experiment = {{...}}`")
    return experiment
