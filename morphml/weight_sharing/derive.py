"""Deriving discrete cells from DARTS's architecture weights.

Every edge of the dense (NB201) cell exists, so each edge takes the argmax over ALL of the
space's ops, "none" included, as NAS-Bench-201's DARTS baselines do: "none" is a legitimate
choice there (it removes the edge), not a placeholder for a missing one.

The collapse fix (`max_skip`) keeps at most that many skip_connect edges. Edges are
independent, so the best cell under that limit is exact to find: keep the skip edges whose
replacement by their next-best op would cost the most log-probability, and replace the others.

`top_k > 1` continues from that cell best-first: each step moves one edge to its next op in
the edge's own ranking, cheapest loss of log-probability first (so the least confident edges
are swapped first); cells that break the skip limit, or that are the same network as one
already taken (the same canonical hash: e.g. edges into a dead node), are passed over.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator

import torch

from morphml.space.cell import CellSpace
from morphml.weight_sharing.supernet import Path
from morphml.weight_sharing.training import config_of

SKIP = "skip_connect"
MAX_EXPANSIONS = 20_000  # bounds the walk when few distinct cells are valid


def skip_count(space: CellSpace, path: Path) -> int:
    return sum(space.ops[i] == SKIP for i in path)


def argmax_path(alpha: torch.Tensor) -> Path:
    """The raw derivation: each edge's strongest op (before any collapse fix)."""
    return [int(i) for i in alpha.argmax(dim=-1).tolist()]


def derive(space: CellSpace, alpha: torch.Tensor, max_skip: int | None, top_k: int) -> list[Path]:
    """At most `top_k` paths of distinct networks, best first."""
    taken: list[Path] = []
    hashes: set[str] = set()
    for path in _ranked(space, alpha, max_skip):
        digest = space.build(config_of(space, path)).hash
        if digest not in hashes:
            hashes.add(digest)
            taken.append(path)
            if len(taken) == top_k:
                break
    return taken


def _ranked(space: CellSpace, alpha: torch.Tensor, max_skip: int | None) -> Iterator[Path]:
    logp: list[list[float]] = torch.log_softmax(alpha.detach().double().cpu(), dim=-1).tolist()
    # Each edge's ops, strongest first (ties: the space's order); a state is one rank per edge.
    orders = [sorted(range(len(row)), key=row.__getitem__, reverse=True) for row in logp]
    start = _fixed_ranks(space, logp, orders, max_skip)

    def score(ranks: tuple[int, ...]) -> float:
        return float(sum(logp[e][orders[e][r]] for e, r in enumerate(ranks)))

    heap = [(-score(start), start)]
    visited = {start}
    for _ in range(MAX_EXPANSIONS):
        if not heap:
            return
        _, ranks = heapq.heappop(heap)
        path = [orders[e][r] for e, r in enumerate(ranks)]
        if max_skip is None or skip_count(space, path) <= max_skip:
            yield path
        for e in range(len(ranks)):
            if ranks[e] + 1 < len(orders[e]):
                after = (*ranks[:e], ranks[e] + 1, *ranks[e + 1 :])
                if after not in visited:
                    visited.add(after)
                    heapq.heappush(heap, (-score(after), after))


def _fixed_ranks(
    space: CellSpace, logp: list[list[float]], orders: list[list[int]], max_skip: int | None
) -> tuple[int, ...]:
    """The argmax with all but the `max_skip` most needed skip edges moved to their next op."""
    ranks = [0] * len(orders)
    skips = [e for e, order in enumerate(orders) if space.ops[order[0]] == SKIP]
    if max_skip is None or len(skips) <= max_skip or len(orders[0]) < 2:
        return tuple(ranks)
    # The cost of giving up an edge's skip: its log-probability minus the next op's.
    skips.sort(key=lambda e: logp[e][orders[e][0]] - logp[e][orders[e][1]])
    for e in skips[: len(skips) - max_skip]:
        ranks[e] = 1
    return tuple(ranks)
