"""`search`: one weight-sharing search (DARTS or SPOS) over a cell space, start to end.

Kept apart from the package's `__init__` because it imports torch: the server builds the
`weight_sharing` optimizer and checks its `SearchSettings` without ever importing torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from morphml.evaluators.datasets import Dataset
from morphml.evaluators.train import configure_threads
from morphml.space.cell import CellSpace
from morphml.weight_sharing.cells import CellLayout, config_of
from morphml.weight_sharing.darts import Darts
from morphml.weight_sharing.settings import SearchSettings
from morphml.weight_sharing.spos import Spos
from morphml.weight_sharing.training import pick_device, to_tensors
from morphml.weight_sharing.types import Report


@dataclass(frozen=True)
class Derived:
    """A derived cell: `space.build(config)` is the network; `score` its validation accuracy
    (a fraction) with the supernet's shared weights."""

    config: dict[str, Any]
    score: float


def search(
    space: CellSpace,
    settings: SearchSettings,
    data: Dataset,
    report: Report | None = None,
    device: str = "auto",
) -> list[Derived]:
    """Best first, at most settings.top_k, distinct canonical hashes (space.build(config).hash)."""
    if not isinstance(settings, SearchSettings):
        raise ValueError(f"settings: expected SearchSettings, got {type(settings).__name__}")
    layout = CellLayout(space)  # refuses a space the supernet cannot mirror
    if settings.method == "darts":
        layout.check_derivable()
        _check_skip_limit(layout, settings)
    configure_threads()
    tensors = to_tensors(data, space, pick_device(device))
    sink: Report = report if report is not None else (lambda metrics: None)
    if settings.method == "darts":
        darts = Darts(space, settings, tensors, tensors.x_train.device)
        found = [(path, darts.score(path)) for path in darts.run(sink)]
    else:
        found = Spos(space, settings, tensors, tensors.x_train.device).run(sink)
    return [Derived(config_of(space, path), score) for path, score in found[: settings.top_k]]


def _check_skip_limit(layout: CellLayout, settings: SearchSettings) -> None:
    """A space whose derivable ops are skip_connect alone cannot keep fewer skip edges."""
    fewest = layout.min_skips()
    if settings.max_skip is not None and settings.max_skip < fewest:
        raise ValueError(
            f"max_skip: {settings.max_skip} is below the {fewest} skip_connect edges every "
            "derived cell of this space has (its only op); use null or a higher limit"
        )
