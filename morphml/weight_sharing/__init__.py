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

from typing import TYPE_CHECKING, Any

from morphml.weight_sharing.settings import SearchSettings

if TYPE_CHECKING:
    from morphml.weight_sharing.runner import Derived, search


def __getattr__(name: str) -> Any:
    # `search` and `Derived` live with torch (runner.py); importing the package, or its
    # settings, must not import torch (the server checks settings; tests/test_dependency_rule).
    if name in ("Derived", "search"):
        from morphml.weight_sharing import runner

        return getattr(runner, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["Derived", "SearchSettings", "search"]
