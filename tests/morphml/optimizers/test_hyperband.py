"""ASHA and Hyperband as optimizers: promotions up the rungs of the budget."""

from __future__ import annotations

import zlib

from morphml.optimizers import make_optimizer
from tests.morphml.spaces import small_cell_space


def test_asha_promotes_the_top_third_to_larger_budgets() -> None:
    optimizer = make_optimizer(
        "asha", small_cell_space(), seed=0, min_budget=1, max_budget=9, eta=3
    )
    budgets: list[float | None] = []
    for _ in range(40):
        for candidate in optimizer.ask(1):
            budgets.append(candidate.budget)
            score = zlib.crc32(candidate.architecture.hash.encode()) % 100
            optimizer.tell(candidate, {"val_accuracy": float(score)})
    assert set(budgets) == {1.0, 3.0, 9.0}
    assert budgets.count(1.0) > budgets.count(3.0) > budgets.count(9.0) > 0


def test_hyperband_starts_brackets_at_every_rung() -> None:
    optimizer = make_optimizer(
        "hyperband", small_cell_space(), seed=0, min_budget=1, max_budget=9, eta=3
    )
    first = optimizer.ask(3)
    assert [c.budget for c in first] == [1.0, 3.0, 9.0]
    assert [c.meta for c in first] == [{"rung": 0}, {"rung": 1}, {"rung": 2}]
