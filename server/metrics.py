"""Prometheus metrics, one registry per app (so tests can build many apps in one process)."""

from __future__ import annotations

import time
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy.engine import Engine
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from server.experiments import all_task_counts
from server.queue_metrics import QueueCollector


class TaskStateCollector(Collector):
    """`morphml_tasks{state=...}`, counted in the database at scrape time."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily("morphml_tasks", "Tasks by state", labels=["state"])
        counts = all_task_counts(self.engine)
        for state, count in counts.items():
            family.add_metric([state], count)
        yield family


class ServerMetrics:
    """Counters and histograms the handlers and the reaper update."""

    def __init__(self, engine: Engine) -> None:
        self.registry = CollectorRegistry()
        self.claims = Counter("morphml_claims", "Tasks handed to workers", registry=self.registry)
        self.empty_claims = Counter(
            "morphml_empty_claims", "Claims that returned 204", registry=self.registry
        )
        self.lease_expiries = Counter(
            "morphml_lease_expiries", "Leases the reaper took back", registry=self.registry
        )
        self.outcomes = Counter(
            "morphml_task_outcomes", "Reported outcomes", ["outcome"], registry=self.registry
        )
        self.latency = Histogram(
            "morphml_request_seconds",
            "Request latency",
            ["method", "route"],
            registry=self.registry,
        )
        # The hot path's labelled children, resolved once (`labels()` costs a lock and a lookup).
        self.completed = self.outcomes.labels(outcome="completed")
        self.registry.register(TaskStateCollector(engine))
        self.registry.register(QueueCollector(engine))  # what an autoscaler scales on


class RequestLatency:
    """Plain ASGI middleware timing each request by route template.

    Not `BaseHTTPMiddleware`: that one runs every request through an extra task and memory
    streams, which cost more than the whole claim on the hot path.
    """

    def __init__(self, app: ASGIApp, metrics: ServerMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        try:
            await self.app(scope, receive, send)
        finally:
            route = scope.get("route")  # the router sets it on this same scope dict
            path = route.path if isinstance(route, Route) else "unmatched"
            self.metrics.latency.labels(scope["method"], path).observe(
                time.perf_counter() - started
            )
