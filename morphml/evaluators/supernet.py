"""The `train` evaluator's supernet task: the `weight_sharing` optimizer's first task trains a
supernet over the whole cell space instead of the candidate's architecture.

The task's candidate meta (`context.meta()`) says so: `{"phase": "supernet", "space": the cell
space's JSON, "search": morphml.weight_sharing.SearchSettings as JSON}`. The candidate's own
architecture is a placeholder sample of the space: it fixes the input shape and outputs the data
are checked against, and is never trained. The data are those `train` prepares for its params
(`dataset`, `train_size`, `val_size`, `seed`); `device` picks the GPU when one is visible. The
search inherits `seed` and `batch_size` from the params unless `search` sets them.

Reports what the search reports (per supernet epoch: `epoch`, `step`, `progress`,
`supernet_train_loss`, `supernet_val_accuracy`, ...) and checkpoints every epoch through the
worker (morphml.weight_sharing.state). Returns `supernet_val_accuracy` (the best derived cell's
validation accuracy with the shared weights), `supernet_seconds`, `derived` (how many cells) and
the cells themselves (morphml.optimizers.derived). Not `val_accuracy`: that would rank the
untrained placeholder beside the networks trained from scratch, and a pruner would compare
those against shared-weight accuracies.
"""

from __future__ import annotations

import time
from typing import Any

from morphml.architecture import Architecture
from morphml.errors import SpaceError
from morphml.evaluators.base import EvaluatorError, Report
from morphml.evaluators.train import TrainConfig, pick_device, prepare_data
from morphml.optimizers.derived import derived_metrics
from morphml.space import CellSpace, space_from_dict
from morphml.weight_sharing import SearchSettings, search

PHASE = "supernet"
# What the train params already say, and the search takes unless its own settings say otherwise.
INHERITED = ("seed", "batch_size")


def is_supernet(meta: dict[str, Any]) -> bool:
    return meta.get("phase") == PHASE


def evaluate(
    architecture: Architecture, config: TrainConfig, meta: dict[str, Any], report: Report
) -> dict[str, float]:
    space = cell_space(meta.get("space"))
    settings = search_settings(meta.get("search"), config)
    device = pick_device(config.device)
    data = prepare_data(architecture, config)
    started = time.perf_counter()
    try:
        found = search(space, settings, data, report, device=str(device))
        cells = derived_metrics(space, found)
    except ValueError as exc:  # the search refused its input: no other attempt would differ
        raise EvaluatorError(f"weight-sharing search: {exc}") from None
    if not found:
        raise EvaluatorError("weight-sharing search: it derived no architecture")
    return {
        "supernet_val_accuracy": found[0].score,
        "supernet_seconds": time.perf_counter() - started,
        "derived": float(len(found)),
        **cells,
    }


def cell_space(data: Any) -> CellSpace:
    try:
        space = space_from_dict(data)
    except SpaceError as exc:
        raise EvaluatorError(f"candidate.meta.space: {exc}") from None
    if not isinstance(space, CellSpace):
        raise EvaluatorError("candidate.meta.space: a supernet needs a cell space")
    return space


def search_settings(data: Any, config: TrainConfig) -> SearchSettings:
    """The settings in the meta, with `seed` and `batch_size` from the params when absent."""
    if not isinstance(data, dict):
        raise EvaluatorError(f"candidate.meta.search: expected an object, got {data!r}")
    inherited = {name: getattr(config, name) for name in INHERITED}
    try:
        return SearchSettings.from_dict({**inherited, **data})
    except ValueError as exc:
        raise EvaluatorError(f"optimizer.params.search: {exc}") from None
