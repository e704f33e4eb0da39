"""Control-plane bench: many workers long-polling an empty queue, and the wake-up latency.

The idle workers hold one 60 s long-poll each (re-claiming on 204). After the measured idle
window, experiments with one task are created while they wait; the latency is from sending
`POST /v1/experiments` to a worker holding the task's lease.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import httpx

from bench.cp_workers import (
    Sampler,
    claim,
    create_experiment,
    experiment_spec,
    finish,
    make_client,
    register_workers,
)


@dataclass
class IdleStats:
    """Server CPU and RSS over the idle window, and creation-to-claim latencies (ms)."""

    cpu_seconds: float = 0.0
    max_rss_mb: float = 0.0
    wake_ms: list[float] = field(default_factory=list)
    wake_cpu_seconds: list[float] = field(default_factory=list)
    claimed_at: list[float] = field(default_factory=list)


async def _idle_loop(client: httpx.AsyncClient, worker_id: int, stats: IdleStats) -> None:
    while True:
        task, _ms = await claim(client, worker_id, wait_seconds=60)
        if task is not None:
            stats.claimed_at.append(time.perf_counter())
            await finish(client, task)


async def _watch(seconds: float, cpu: Sampler, rss: Sampler, stats: IdleStats) -> None:
    first = cpu()
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        stats.max_rss_mb = max(stats.max_rss_mb, rss())
        await asyncio.sleep(min(1.0, max(0.0, deadline - time.perf_counter())))
    stats.max_rss_mb = max(stats.max_rss_mb, rss())
    stats.cpu_seconds = cpu() - first


async def _probe_wakeups(
    client: httpx.AsyncClient, probes: int, cpu: Sampler, stats: IdleStats
) -> None:
    for _ in range(probes):
        seen, cpu_before = len(stats.claimed_at), cpu()
        sent = time.perf_counter()
        await create_experiment(client, experiment_spec(parallelism=1, max_evaluations=1))
        while len(stats.claimed_at) == seen and time.perf_counter() - sent < 30:
            await asyncio.sleep(0.001)
        if len(stats.claimed_at) > seen:
            stats.wake_ms.append((stats.claimed_at[seen] - sent) * 1000)
        await asyncio.sleep(1.0)  # let the herd settle before the next probe
        stats.wake_cpu_seconds.append(cpu() - cpu_before)


async def run_idle(
    url: str, *, workers: int, ramp: float, seconds: float, probes: int, cpu: Sampler, rss: Sampler
) -> IdleStats:
    """`workers` idle long-pollers for `seconds`, then `probes` single-task experiments."""
    stats = IdleStats()
    async with make_client(url, workers + 8) as client:
        ids = await register_workers(client, workers)
        loops = [asyncio.create_task(_idle_loop(client, i, stats)) for i in ids]
        await asyncio.sleep(ramp)
        await _watch(seconds, cpu, rss, stats)
        await _probe_wakeups(client, probes, cpu, stats)
        for loop in loops:
            loop.cancel()
        await asyncio.gather(*loops, return_exceptions=True)
    return stats
