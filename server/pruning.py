"""The pruner call site: after a heartbeat with metrics, should this task stop early?

The pruners themselves (median rule, ASHA) live in the library (`morphml.optimizers.pruners`,
being written concurrently); until it lands, experiments that name a pruner are refused with a
422 and `stop_reason` never stops a task.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Engine

from server.errors import InvalidSpecError
from server.models import Task


def validate_pruner(pruner: dict[str, Any] | None) -> None:
    """Refuse a pruner the library cannot build, naming the field."""
    if pruner is not None:
        raise InvalidSpecError(
            f"pruner.name: pruner {pruner.get('name')!r} is not available in this version"
        )


def stop_reason(engine: Engine, *, task: Task) -> str | None:
    """Why the experiment's pruner wants `task` stopped, or None to let it continue."""
    return None
