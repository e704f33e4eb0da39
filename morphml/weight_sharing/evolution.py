"""SPOS's evolutionary search over the sub-networks of a trained supernet.

A population of distinct cells (by canonical hash: two paths that build the same network are
one candidate), scored by a callback (the validation accuracy with the shared weights). Each
generation the best quarter are parents; half the children mutate one parent (every edge
redrawn with probability 1/edges, at least one edge changed), half cross two parents over
(each edge from either), and the best `population` of old and new survive. Nothing is scored
twice, and the search ends early when no new cell turns up, so a tiny space cannot hang it.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator

from morphml.space.cell import CellSpace
from morphml.weight_sharing.supernet import Path
from morphml.weight_sharing.training import config_of
from morphml.weight_sharing.types import Report

TRIES_PER_CHILD = 20


class Evolution:
    def __init__(
        self,
        space: CellSpace,
        score: Callable[[Path], float],
        population: int,
        seed: int,
    ) -> None:
        self.space, self.score_path, self.size = space, score, population
        self.rng = random.Random(seed)
        self.num_ops = len(space.ops)
        self.num_edges = len(space.variables())
        self.scored: dict[str, tuple[float, Path]] = {}  # hash -> (accuracy, path), in order
        self.hashes: dict[tuple[int, ...], str] = {}  # building a network to hash it is slow

    def run(
        self, generations: int, report: Report, step: int, steps: int
    ) -> list[tuple[Path, float]]:
        """Every scored path with its accuracy, best first (ties: the earlier scored)."""
        population = self.add(self.random_path() for _ in range(self.size * TRIES_PER_CHILD))
        for generation in range(1, generations + 1):
            parents = population[: max(2, self.size // 4)]
            children = self.add(self.child(parents) for _ in range(self.size * TRIES_PER_CHILD))
            population = self.best(population + children)[: self.size]
            best = self.scored[population[0]][0] if population else 0.0
            report({
                "generation": generation, "step": step + generation,
                "progress": (step + generation) / steps, "evolution_best_accuracy": best,
                "evaluated": len(self.scored),
            })  # fmt: skip
            if not children:
                break  # nothing new to try: the space (or its neighbourhood) is used up
        return [(self.scored[h][1], self.scored[h][0]) for h in self.best(list(self.scored))]

    def add(self, paths: Iterator[Path]) -> list[str]:
        """Score new cells drawn from `paths` until `self.size` of them; their hashes, best
        first."""
        added: list[str] = []
        for path in paths:
            if len(added) == self.size:
                break
            digest = self.hash(path)
            if digest not in self.scored:
                self.scored[digest] = (self.score_path(path), path)
                added.append(digest)
        return self.best(added)

    def hash(self, path: Path) -> str:
        key = tuple(path)
        if key not in self.hashes:
            self.hashes[key] = self.space.build(config_of(self.space, path)).hash
        return self.hashes[key]

    def best(self, hashes: list[str]) -> list[str]:
        order = {h: i for i, h in enumerate(self.scored)}
        return sorted(hashes, key=lambda h: (-self.scored[h][0], order[h]))

    def random_path(self) -> Path:
        return [self.rng.randrange(self.num_ops) for _ in range(self.num_edges)]

    def child(self, parents: list[str]) -> Path:
        if self.rng.random() < 0.5 and len(parents) >= 2:
            a, b = (self.scored[h][1] for h in self.rng.sample(parents, 2))
            return [self.rng.choice(pair) for pair in zip(a, b, strict=True)]
        return self.mutate(self.scored[self.rng.choice(parents)][1])

    def mutate(self, path: Path) -> Path:
        if self.num_ops < 2:
            return list(path)
        changed = list(path)
        edges = [e for e in range(self.num_edges) if self.rng.random() < 1 / self.num_edges]
        for e in edges or [self.rng.randrange(self.num_edges)]:
            changed[e] = self.rng.choice([i for i in range(self.num_ops) if i != path[e]])
        return changed
