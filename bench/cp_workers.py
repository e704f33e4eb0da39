"""Control-plane bench: simulated `morphml-worker` agents (asyncio + httpx) with zero-time work.

Each simulated worker speaks the real wire protocol (server/api/tasks.py): register, then
claim (long-poll) -> one heartbeat -> complete, over its own keep-alive connection.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from morphml import IntRange, Layer, SearchSpace

Sampler = Callable[[], float]


def big_space() -> dict[str, Any]:
    """10^12 architectures: random search never runs dry, whatever the number of tasks."""
    space = SearchSpace("bench").add_layers(
        Layer.input(shape=(1, 8, 8)),
        Layer.flatten(),
        Layer.dense(units=IntRange(1, 1_000_000)),
        Layer.dense(units=IntRange(1, 1_000_000)),
        Layer.output(units=10),
    )
    return space.to_dict()


# The pruner of the metrics-heartbeat rows: it compares every report from the first step on.
MEDIAN_PRUNER = {"name": "median", "params": {"warmup_steps": 0, "min_tasks": 5}}


def experiment_spec(
    *, parallelism: int, max_evaluations: int = 10_000_000, pruner: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {
        "pruner": pruner,
        "name": "control-plane-bench",
        "search_space": big_space(),
        "optimizer": {"name": "random", "params": {}},
        "objectives": [{"metric": "val_accuracy", "direction": "maximize"}],
        "evaluator": {"kind": "proxy", "params": {}},
        "budget": {"max_evaluations": max_evaluations, "max_seconds": None},
        "parallelism": parallelism,
        "lease_seconds": 60,
        "max_attempts": 3,
        "seed": 7,
    }


def make_client(url: str, connections: int) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    return httpx.AsyncClient(base_url=url, limits=limits, timeout=httpx.Timeout(120.0))


async def create_experiment(client: httpx.AsyncClient, spec: dict[str, Any]) -> int:
    response = await client.post("/v1/experiments", json=spec)
    response.raise_for_status()
    return int(response.json()["id"])


async def register_workers(client: httpx.AsyncClient, count: int) -> list[int]:
    gate = asyncio.Semaphore(32)

    async def one(index: int) -> int:
        async with gate:
            body = {"name": f"sim-{index}", "host": "bench", "resources": {"cpus": 1}}
            response = await client.post("/v1/workers", json=body)
            response.raise_for_status()
            return int(response.json()["id"])

    return list(await asyncio.gather(*(one(i) for i in range(count))))


@dataclass
class CycleStats:
    """What the measured window saw: finished cycles and per-call latencies in ms."""

    cycles: int = 0
    latency_ms: dict[str, list[float]] = field(
        default_factory=lambda: {"claim": [], "heartbeat": [], "complete": []}
    )


@dataclass(frozen=True)
class Window:
    """The measured interval, in `time.perf_counter()` seconds."""

    start: float
    end: float

    def holds(self, moment: float) -> bool:
        return self.start <= moment <= self.end


# Connection-level retries (e.g. a keep-alive connection the server closed as it was reused),
# as the real worker retries; reported beside the figures.
TRANSPORT_RETRIES = {"count": 0}


async def timed_post(
    client: httpx.AsyncClient, path: str, body: dict[str, Any]
) -> tuple[httpx.Response, float]:
    """POST with its latency in ms; a dropped connection is retried (the calls are idempotent)."""
    for attempt in range(5):
        started = time.perf_counter()
        try:
            response = await client.post(path, json=body)
        except httpx.TransportError:
            TRANSPORT_RETRIES["count"] += 1
            await asyncio.sleep(0.05 * 2**attempt)
            continue
        return response, (time.perf_counter() - started) * 1000
    raise RuntimeError(f"POST {path}: connection failed 5 times")


async def claim(
    client: httpx.AsyncClient, worker_id: int, wait_seconds: float
) -> tuple[dict[str, Any] | None, float]:
    """One long-poll claim: (the task, or None on 204; its latency in ms)."""
    response, ms = await timed_post(
        client, "/v1/tasks/claim", {"worker_id": worker_id, "wait_seconds": wait_seconds}
    )
    if response.status_code == 204:
        return None, ms
    response.raise_for_status()
    task: dict[str, Any] = response.json()
    return task, ms


def _made_up_accuracy(task: dict[str, Any]) -> float:
    return (task["id"] % 997) / 997


async def finish(
    client: httpx.AsyncClient, task: dict[str, Any], report: bool = False
) -> list[tuple[str, float]]:
    """One heartbeat (`report`: carrying an epoch's metrics, as `train` sends), then complete
    with a made-up metric unless the pruner stopped the task: the calls' latencies in ms."""
    token = task["lease_token"]
    body: dict[str, Any] = {"lease_token": token, "progress": 0.5}
    if report:
        body.update(step=1, metrics={"val_accuracy": _made_up_accuracy(task)})
    beat, beat_ms = await timed_post(client, f"/v1/tasks/{task['id']}/heartbeat", body)
    beat.raise_for_status()
    if beat.json()["action"] == "stop":
        return [("heartbeat", beat_ms)]
    done, done_ms = await timed_post(
        client,
        f"/v1/tasks/{task['id']}/complete",
        {"lease_token": token, "metrics": {"val_accuracy": _made_up_accuracy(task)}},
    )
    done.raise_for_status()
    return [("heartbeat", beat_ms), ("complete", done_ms)]


async def one_cycle(
    client: httpx.AsyncClient,
    worker_id: int,
    wait_seconds: float,
    eval_seconds: float = 0.0,
    report: bool = False,
) -> list[tuple[str, float]] | None:
    """claim -> (evaluate: sleep) -> heartbeat -> complete; the calls' latencies, or None when
    the claim got 204."""
    task, claim_ms = await claim(client, worker_id, wait_seconds)
    if task is None:
        return None
    if eval_seconds:
        await asyncio.sleep(eval_seconds)
    return [("claim", claim_ms), *await finish(client, task, report)]


async def _cycle_loop(
    url: str, worker_id: int, window: Window, stats: CycleStats, eval_seconds: float, report: bool
) -> None:
    # Its own client and connection, as each real worker has: one client shared by N workers
    # spends more CPU in httpx's connection pool than the server spends per request at N = 32.
    async with make_client(url, 1) as client:
        while time.perf_counter() < window.end:
            calls = await one_cycle(client, worker_id, 5, eval_seconds, report)
            if calls is None or not window.holds(time.perf_counter()):
                continue
            stats.cycles += 1
            for name, ms in calls:
                stats.latency_ms[name].append(ms)


async def _sample_at(window: Window, sample: Sampler) -> tuple[float, float]:
    await asyncio.sleep(max(0.0, window.start - time.perf_counter()))
    first = sample()
    await asyncio.sleep(max(0.0, window.end - time.perf_counter()))
    return first, sample()


async def run_cycles(
    url: str,
    *,
    workers: int,
    warmup: float,
    seconds: float,
    cpu: Sampler,
    prepare: Callable[[int], None] | None = None,
    eval_seconds: float = 0.0,
    pruner: dict[str, Any] | None = None,
) -> tuple[CycleStats, float]:
    """N workers cycling for warmup + seconds; (stats of the window, server CPU s in it).

    `prepare(experiment_id)` runs (in a thread) after the experiment exists, before any claim;
    each evaluation takes `eval_seconds` (zero: the server is driven flat out). With a
    `pruner`, each heartbeat carries metrics, which the server records and prunes on.
    """
    async with make_client(url, workers + 8) as client:
        spec = experiment_spec(parallelism=max(2 * workers, workers + 8), pruner=pruner)
        experiment_id = await create_experiment(client, spec)
        if prepare is not None:
            await asyncio.to_thread(prepare, experiment_id)
        ids = await register_workers(client, workers)
        now = time.perf_counter()
        window = Window(start=now + warmup, end=now + warmup + seconds)
        stats = CycleStats()
        report = pruner is not None
        loops = [
            asyncio.create_task(_cycle_loop(url, i, window, stats, eval_seconds, report))
            for i in ids
        ]
        cpu_start, cpu_end = await _sample_at(window, cpu)
        await _finish(loops, grace=10.0)
    return stats, cpu_end - cpu_start


async def _finish(loops: list[asyncio.Task[None]], grace: float) -> None:
    """Let the loops end on their own; cancel any still long-polling after `grace` seconds."""
    done, pending = await asyncio.wait(loops, timeout=grace)
    for loop in pending:
        loop.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    for loop in done:
        loop.result()


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]
