"""SPOS's evolutionary search over the sub-networks of a trained supernet.

A population of distinct cells (by canonical hash: two paths that build the same network are
one candidate), scored by a callback (the validation accuracy with the shared weights). Each
generation the best quarter are parents; half the children mutate one parent (every unit
redrawn with probability 1/units, at least one changed), half cross two parents over (each
unit from either; a unit is an edge, or a node's picked inputs: morphml.weight_sharing.cells),
and the best `population` of old and new survive. Nothing is scored twice, and the search ends
early when no new cell turns up, so a tiny space cannot hang it.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator

from morphml.weight_sharing.cells import CellLayout, Path
from morphml.weight_sharing.types import Report

TRIES_PER_CHILD = 20


class Evolution:
    def __init__(
        self,
        layout: CellLayout,
        score: Callable[[Path], float],
        population: int,
        seed: int,
    ) -> None:
        self.layout, self.score_path, self.size = layout, score, population
        self.rng = random.Random(seed)
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
            self.hashes[key] = self.layout.space.build(self.layout.to_config(path)).hash
        return self.hashes[key]

    def best(self, hashes: list[str]) -> list[str]:
        order = {h: i for i, h in enumerate(self.scored)}
        return sorted(hashes, key=lambda h: (-self.scored[h][0], order[h]))

    def random_path(self) -> Path:
        return self.layout.draw(self.rng)

    def child(self, parents: list[str]) -> Path:
        if self.rng.random() < 0.5 and len(parents) >= 2:
            a, b = (self.scored[h][1] for h in self.rng.sample(parents, 2))
            return self.layout.crossover(a, b, self.rng)
        return self.layout.mutate(self.scored[self.rng.choice(parents)][1], self.rng)
