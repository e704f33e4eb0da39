"""Deriving discrete cells from DARTS's architecture weights.

In the dense form every edge exists, so each edge takes the argmax over ALL of the space's ops,
"none" included, as NAS-Bench-201's DARTS baselines do: "none" is a legitimate choice there (it
removes the edge), not a placeholder for a missing one. With input selection each node keeps
the `inputs_per_node` edges, and ops, of highest probability, "none" excluded (DARTS's rule: a
picked input is meant to be used). Both are one rule: each unit (an edge, or a node's picks;
morphml.weight_sharing.cells) takes its option of highest log-probability.

The collapse fix (`max_skip`) keeps at most that many skip_connect edges: the derivation is the
cell of highest log-probability within that limit (exact: a small dynamic programme over units
and the skip budget). In the dense form this keeps the skip edges that would cost the most to
give up and moves the others to their next-best op.

`top_k > 1` continues from that cell best-first: each step moves one unit to its next option in
the unit's own ranking, cheapest loss of log-probability first (so the least confident units
change first); cells that break the skip limit, or that are the same network as one already
taken (the same canonical hash: e.g. edges into a dead node), are passed over.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterator

import torch

from morphml.space.cell import CellSpace
from morphml.weight_sharing.cells import CellLayout, Option, Path

MAX_EXPANSIONS = 20_000  # bounds the walk when few distinct cells are valid


def skip_count(space: CellSpace, path: Path) -> int:
    return CellLayout(space).skips(path)


def raw_path(layout: CellLayout, alpha: torch.Tensor) -> Path:
    """The derivation before any collapse fix: each unit's most probable option."""
    logp = _log_probs(alpha)
    return layout.assemble([layout.options(u, logp)[0][1] for u in range(len(layout.units))])


def derive(space: CellSpace, alpha: torch.Tensor, max_skip: int | None, top_k: int) -> list[Path]:
    """At most `top_k` paths of distinct networks, best first."""
    layout = CellLayout(space)
    taken: list[Path] = []
    hashes: set[str] = set()
    for path in _ranked(layout, alpha, max_skip):
        digest = space.build(layout.to_config(path)).hash
        if digest not in hashes:
            hashes.add(digest)
            taken.append(path)
            if len(taken) == top_k:
                break
    return taken


def _log_probs(alpha: torch.Tensor) -> list[list[float]]:
    logp: list[list[float]] = torch.log_softmax(alpha.detach().double().cpu(), dim=-1).tolist()
    return logp


def _ranked(layout: CellLayout, alpha: torch.Tensor, max_skip: int | None) -> Iterator[Path]:
    logp = _log_probs(alpha)
    options = [layout.options(u, logp) for u in range(len(layout.units))]
    start = _best_within(layout, options, max_skip)

    def score(ranks: tuple[int, ...]) -> float:
        return float(sum(options[u][r][0] for u, r in enumerate(ranks)))

    heap = [(-score(start), start)]
    visited = {start}
    for _ in range(MAX_EXPANSIONS):
        if not heap:
            return
        _, ranks = heapq.heappop(heap)
        path = layout.assemble([options[u][r][1] for u, r in enumerate(ranks)])
        if max_skip is None or layout.skips(path) <= max_skip:
            yield path
        for u in range(len(ranks)):
            if ranks[u] + 1 < len(options[u]):
                after = (*ranks[:u], ranks[u] + 1, *ranks[u + 1 :])
                if after not in visited:
                    visited.add(after)
                    heapq.heappush(heap, (-score(after), after))


def _best_within(
    layout: CellLayout, options: list[list[Option]], max_skip: int | None
) -> tuple[int, ...]:
    """The ranks of the most probable cell with at most `max_skip` skip edges (each unit's
    best when there is no limit, or no way to meet it)."""
    units = len(options)
    if max_skip is None:
        return (0,) * units
    skips = [[layout.option_skips(entries) for _, entries in unit] for unit in options]
    budget = min(max_skip, sum(max(unit) for unit in skips))
    # best[u][b]: the highest log-probability of units u.. with b skip edges left to spend.
    best = [[0.0] * (budget + 1) for _ in range(units + 1)]
    pick = [[0] * (budget + 1) for _ in range(units)]
    for u in reversed(range(units)):
        for b in range(budget + 1):
            best[u][b], pick[u][b] = -math.inf, 0
            for r, (logp, _) in enumerate(options[u]):
                if skips[u][r] <= b and logp + best[u + 1][b - skips[u][r]] > best[u][b]:
                    best[u][b], pick[u][b] = logp + best[u + 1][b - skips[u][r]], r
    if best[0][budget] == -math.inf:
        return (0,) * units
    ranks, b = [], budget
    for u in range(units):
        ranks.append(pick[u][b])
        b -= skips[u][pick[u][b]]
    return tuple(ranks)
