"""What an autoscaler needs, computed at scrape time in two grouped queries: pending and running
tasks by resource class (GPUs and labels an experiment asks for), idle worker slots, and the age of
the oldest pending task."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy.engine import Connection, Engine

from server.db import db_now, read
from server.models import EXPERIMENT, TASK, WORKER, ExperimentStatus, TaskState, WorkerStatus

ResourceClass = tuple[str, str]  # (gpus, labels) as Prometheus label values


def resource_class(gpus: int, labels: dict[str, str] | None) -> ResourceClass:
    """`(2, {"zone": "a"})` -> `("2", "zone=a")`; labels sorted, so one class has one name."""
    text = ",".join(f"{key}={value}" for key, value in sorted((labels or {}).items()))
    return str(gpus), text


@dataclass
class QueueSnapshot:
    """One scrape's figures."""

    pending: dict[ResourceClass, int] = field(default_factory=lambda: defaultdict(int))
    running: dict[ResourceClass, int] = field(default_factory=lambda: defaultdict(int))
    oldest_pending_age_seconds: float = 0.0
    idle_slots: int = 0
    online_slots: int = 0


_PENDING = sa.func.sum(sa.case((TASK.state == TaskState.PENDING, 1), else_=0))
_RUNNING = sa.func.sum(sa.case((TASK.state == TaskState.RUNNING, 1), else_=0))
_OLDEST = sa.func.min(sa.case((TASK.state == TaskState.PENDING, TASK.created_at), else_=None))
# Live tasks per experiment (the state index serves it), then each experiment's resource class.
_BY_EXPERIMENT = (
    sa.select(
        TASK.experiment_id,
        _PENDING.label("pending"),
        _RUNNING.label("running"),
        _OLDEST.label("oldest"),
    )
    .where(TASK.state.in_((TaskState.PENDING, TaskState.RUNNING)))
    .group_by(TASK.experiment_id)
    .subquery()
)
TASKS_BY_CLASS = sa.select(
    EXPERIMENT.status,
    EXPERIMENT.need_gpus,
    EXPERIMENT.need_labels,
    _BY_EXPERIMENT.c.pending,
    _BY_EXPERIMENT.c.running,
    sa.type_coerce(_BY_EXPERIMENT.c.oldest, EXPERIMENT.created_at.type).label("oldest"),
    db_now().label("now"),
).join(_BY_EXPERIMENT, _BY_EXPERIMENT.c.experiment_id == EXPERIMENT.id)
# Online workers' declared slots and how many of them their running tasks fill.
_HELD = (
    sa.select(sa.func.count())
    .where(TASK.worker_id == WORKER.id, TASK.state == TaskState.RUNNING)
    .scalar_subquery()
)
SLOTS_OF_ONLINE_WORKERS = sa.select(WORKER.resources, _HELD.label("held")).where(
    WORKER.status == WorkerStatus.ONLINE
)


def queue_snapshot(engine: Engine) -> QueueSnapshot:
    snapshot = QueueSnapshot()
    with read(engine) as connection:
        _count_tasks(snapshot, connection.execute(TASKS_BY_CLASS))
        _count_slots(snapshot, connection)
    return snapshot


def _count_tasks(snapshot: QueueSnapshot, rows: Iterable[Any]) -> None:
    """Pending tasks count only in running experiments (a paused one's wait for no worker)."""
    oldest: list[float] = []
    for status, gpus, labels, pending, running, oldest_at, now in rows:
        key = resource_class(gpus, labels)
        snapshot.running[key] += int(running or 0)
        if status != ExperimentStatus.RUNNING or not pending:
            continue
        snapshot.pending[key] += int(pending)
        if isinstance(oldest_at, datetime) and isinstance(now, datetime):
            oldest.append((now - oldest_at).total_seconds())
    snapshot.oldest_pending_age_seconds = max([0.0, *oldest])


def _count_slots(snapshot: QueueSnapshot, connection: Connection) -> None:
    """A worker that declared no slots (an older agent) counts none: its capacity is unknown."""
    for resources, held in connection.execute(SLOTS_OF_ONLINE_WORKERS):
        slots = int((resources or {}).get("slots") or 0)
        snapshot.online_slots += slots
        snapshot.idle_slots += max(0, slots - int(held))


class QueueCollector(Collector):
    """`morphml_pending_tasks`, `morphml_running_tasks`, `morphml_idle_slots`,
    `morphml_worker_slots` and `morphml_oldest_pending_task_age_seconds`."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def collect(self) -> Iterator[Metric]:
        snapshot = queue_snapshot(self.engine)
        yield _by_class(
            "morphml_pending_tasks",
            "Tasks waiting for a worker, in running experiments, by the GPUs and labels they need",
            snapshot.pending,
        )
        yield _by_class(
            "morphml_running_tasks", "Tasks under a lease, by resource class", snapshot.running
        )
        yield GaugeMetricFamily(
            "morphml_idle_slots",
            "Online workers' declared slots not filled by a running task",
            value=snapshot.idle_slots,
        )
        yield GaugeMetricFamily(
            "morphml_worker_slots", "Online workers' declared slots", value=snapshot.online_slots
        )
        yield GaugeMetricFamily(
            "morphml_oldest_pending_task_age_seconds",
            "Age of the oldest task waiting for a worker (0 when none waits)",
            value=snapshot.oldest_pending_age_seconds,
        )


def _by_class(name: str, documentation: str, counts: dict[ResourceClass, int]) -> Metric:
    family = GaugeMetricFamily(name, documentation, labels=["gpus", "labels"])
    for (gpus, labels), count in sorted(counts.items()):
        family.add_metric([gpus, labels], count)
    return family
