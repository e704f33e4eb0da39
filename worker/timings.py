"""The agent's own overhead per task, for its operator and for benchmarks.

Per task: from the claim's answer to the evaluation handed to its process, plus from the result
in hand to its post leaving for the server (the outbox write included). The agent logs the
summary when it stops: `task overhead: n=<tasks> p50=<ms>ms p99=<ms>ms`.
"""

from __future__ import annotations

import threading
from collections import deque

KEEP = 100_000  # the latest tasks' figures: enough for percentiles, bounded in memory


class Overheads:
    """Seconds of agent overhead per task, from every slot's thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seconds: deque[float] = deque(maxlen=KEEP)

    def add(self, seconds: float) -> None:
        with self._lock:
            self._seconds.append(max(0.0, seconds))

    def percentile(self, fraction: float) -> float | None:
        with self._lock:
            ordered = sorted(self._seconds)
        if not ordered:
            return None
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]

    def summary(self) -> str | None:
        """The log line, or None before the first task."""
        p50, p99 = self.percentile(0.5), self.percentile(0.99)
        if p50 is None or p99 is None:
            return None
        return f"task overhead: n={len(self._seconds)} p50={p50 * 1e3:.2f}ms p99={p99 * 1e3:.2f}ms"
