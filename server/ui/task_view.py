"""One task for the dashboard: its row, experiment, worker, event timeline, and its architecture
as a drawable graph (nodes with ops, params and output shapes; the cell of a cell space) with
params, FLOPs and the exported PyTorch source (`morphml.torch_source`: no torch import)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from morphml.architecture import Architecture
from morphml.errors import MorphMLError
from morphml.space.cell import CellSpace
from morphml.torch_source import export_source
from server.db import read
from server.errors import NotFoundError
from server.models import EVENT, EXPERIMENT, TASK
from server.spec import cached_space
from server.store import intermediate
from server.ui.listings import objective_of, value_of, worker_names

MAX_EVENTS = 500


def task_detail(engine: Engine, *, task_id: int) -> dict[str, Any]:
    with read(engine) as connection:
        task = connection.execute(sa.select(*TASK).where(TASK.id == task_id)).first()
        if task is None:
            raise NotFoundError(f"task {task_id} not found")
        experiment = connection.execute(
            sa.select(EXPERIMENT.id, EXPERIMENT.name, EXPERIMENT.spec).where(
                EXPERIMENT.id == task.experiment_id
            )
        ).one()
        events = connection.execute(
            sa.select(EVENT.kind, EVENT.attempt, EVENT.worker_id, EVENT.detail, EVENT.created_at)
            .where(EVENT.task_id == task_id)
            .order_by(EVENT.id)
            .limit(MAX_EVENTS)
        ).all()
        history = intermediate.history(connection, task_id)
        ids = {e.worker_id for e in events if e.worker_id} | ({task.worker_id} - {None})
        names = worker_names(connection, ids)
    objective = objective_of(experiment.spec)
    return {
        "task": _task_fields(task, objective, names),
        "experiment": {"id": experiment.id, "name": experiment.name, "objective": objective},
        "intermediate": intermediate.as_public(history),
        "events": [{**e._asdict(), "worker_name": names.get(e.worker_id)} for e in events],
        "architecture": architecture_view(task.candidate, experiment.spec),
    }


def _task_fields(task: Any, objective: dict[str, str], names: dict[int, str]) -> dict[str, Any]:
    skip = {"lease_token", "released_token", "candidate", "tell_pending"}
    fields = {key: value for key, value in task._asdict().items() if key not in skip}
    return {
        **fields,
        "value": value_of(task.score, objective),
        "worker_name": names.get(task.worker_id),
        "candidate_budget": (task.candidate or {}).get("budget"),
    }


def architecture_view(candidate: Any, spec: dict[str, Any]) -> dict[str, Any]:
    """The graph, size and source of a task's architecture; a malformed one says why."""
    raw = candidate.get("architecture") if isinstance(candidate, dict) else None
    try:
        architecture = Architecture.from_dict(raw)  # type: ignore[arg-type]
        source = export_source(architecture)
    except (MorphMLError, KeyError, TypeError, ValueError) as exc:
        return {"error": f"the architecture cannot be shown: {exc}"}
    return {
        "hash": architecture.hash,
        "params": architecture.num_params,
        "flops": architecture.flops,
        "config": architecture.config,
        "nodes": [_node(architecture, nid) for nid in architecture.order],
        "cell": _cell(architecture.config, spec.get("search_space") or {}),
        "source": source,
    }


def _node(architecture: Architecture, nid: str) -> dict[str, Any]:
    node = architecture.nodes[nid]
    return {
        "id": nid,
        "op": node.op,
        "params": node.params,
        "inputs": list(node.inputs),
        "shape": list(architecture.shapes[nid]),
    }


def _cell(config: dict[str, Any], space: dict[str, Any]) -> dict[str, Any] | None:
    """A cell space's searched cell: its nodes (the first `cell_inputs` are the cell's inputs)
    and the chosen edges, as `CellSpace.edges` reads them for every cell form (NAS-Bench-201's
    `j<-i` edges, DARTS-style and one-input picks); None when the space or config does not
    parse (a task of an older or hand-made spec: the page still shows the config)."""
    if space.get("type") != "cell":
        return None
    try:
        cell = cached_space(space)
        if not isinstance(cell, CellSpace):
            return None
        edges = cell.edges(config)
    except (MorphMLError, ValueError, TypeError):
        return None
    return {
        "num_nodes": cell.num_nodes,
        "cell_inputs": cell.structure.cell_inputs,
        "edges": [{"from": e.source, "to": e.node, "op": e.op} for e in edges],
    }
