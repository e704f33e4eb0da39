"""Weight-sharing NAS over MorphML's cell spaces: DARTS, and SPOS with evolutionary search.

```python
from morphml.weight_sharing import SearchSettings, search

found = search(space, SearchSettings(method="darts", epochs=10, top_k=3), data)
best = space.build(found[0].config)  # train it from scratch to know what it is worth
```

`search` trains one supernet of a `CellSpace` (the dense NAS-Bench-201 form, or DARTS-style
input selection; sum node aggregation and built-in ops: morphml.weight_sharing.supernet) and
returns at most `top_k` derived cells of distinct networks, best first, each with its
validation accuracy measured with the shared weights (after recalibrating BatchNorm for that
sub-network). For
DARTS "best" is the order the architecture weights rank them in (the first is DARTS's answer);
for SPOS it is that accuracy. `report` receives the progress once per supernet epoch (and, for
SPOS, once per generation); on a worker each epoch is checkpointed and a resumed task goes on
after its last checkpointed epoch (morphml.weight_sharing.state).

Method details: morphml.weight_sharing.darts, .spos, .derive, .evolution, .supernet, .cells.
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


__all__ = ["Derived", "SearchSettings", "search"]
