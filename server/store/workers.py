"""Worker transitions: registration, and marking silent workers offline."""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Engine

from server.db import unit
from server.store import sql as S
from server.store.sql import Row


def register(
    engine: Engine, *, name: str, host: str, resources: dict[str, Any], labels: dict[str, str]
) -> Row:
    """Each agent start registers anew: ids are cheap, and a restarted agent is a new worker."""
    with unit(engine) as connection:
        params = {"name": name, "host": host, "resources": resources, "labels": labels}
        return connection.execute(S.REGISTER_WORKER, params).one()


def mark_silent_offline(engine: Engine, *, silent_seconds: float) -> int:
    with unit(engine) as connection:
        result = connection.execute(S.MARK_SILENT_OFFLINE, {"b_silent": -silent_seconds})
        return int(result.rowcount or 0)
