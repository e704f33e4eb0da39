"""The optimizer interface: asynchronous ask/tell with JSON-serialisable state."""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

from morphml.architecture import Architecture
from morphml.errors import MorphMLError

# Given architecture hashes, the subset that the caller already holds (the server: as tasks of
# this experiment, found by `candidate_key(hash, None)`).
KnownHashes = Callable[[Collection[str]], set[str]]


def candidate_key(arch_hash: str, budget: float | None) -> str:
    """A candidate's identity within one run: `"<arch_hash>@<budget>"`, e.g. `"3f2a...@None"`.

    The server stores it with each task (unique per experiment) to refuse duplicates and to tell
    optimizers which architectures it holds, so its spelling must never change: keys already in a
    database would no longer match. `str(budget)` is kept as is (2.0 and 2 differ) for that reason.
    """
    return f"{arch_hash}@{budget}"


class OptimizerError(MorphMLError):
    """Unknown optimizer, bad parameters, or a call the optimizer cannot serve."""


class Outcome(StrEnum):
    """How an evaluation ended, as told back to the optimizer."""

    COMPLETED = "completed"
    """Finished; its metrics are final."""
    FAILED = "failed"
    """Crashed or ran out of attempts; metrics may be missing."""
    PRUNED = "pruned"
    """Stopped early by a pruner; metrics are the last intermediate ones."""


@dataclass(frozen=True)
class Objective:
    """A named metric and whether bigger is better."""

    metric: str
    direction: str = "maximize"

    def __post_init__(self) -> None:
        if self.direction not in ("maximize", "minimize"):
            raise OptimizerError(
                f"objectives.direction: 'maximize' or 'minimize', got {self.direction!r}"
            )

    def sign(self) -> float:
        """+1 for maximize, -1 for minimize: multiply to turn any objective into a maximisation."""
        return 1.0 if self.direction == "maximize" else -1.0


@dataclass
class Candidate:
    """What an optimizer proposes: an architecture and an optional budget (fidelity, e.g. epochs).

    `meta` is the optimizer's own bookkeeping (e.g. an ASHA rung); it must be JSON-able and is
    handed back unchanged with `tell`.
    """

    architecture: Architecture
    budget: float | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """Identity within one optimizer run: architecture hash and budget."""
        return candidate_key(self.architecture.hash, self.budget)

    def to_dict(self) -> dict[str, Any]:
        return {
            "architecture": self.architecture.to_dict(),
            "budget": self.budget,
            "meta": self.meta,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Candidate:
        return cls(
            Architecture.from_dict(data["architecture"]),
            data.get("budget"),
            dict(data.get("meta") or {}),
        )


@runtime_checkable
class Optimizer(Protocol):
    """Ask/tell. `ask` may be called while earlier candidates are in flight; `tell` may come in
    any order and must be called for failed and pruned candidates too (metrics may be None).
    `state_dict()` is plain JSON; a fresh optimizer given it continues exactly as the original.

    Optionally (see `AcceptsKnown`) an optimizer has a `known` attribute: the caller sets it,
    before any tell or ask, to a `KnownHashes` lookup, and the optimizer never proposes an
    architecture it reports. Optimizers that do not persist every hash they proposed (to keep
    their state from growing with the run) rely on it: they continue exactly as the original
    only when it reports at least every architecture asked before the state was saved.
    """

    def ask(self, n: int = 1) -> list[Candidate]: ...

    def tell(
        self,
        candidate: Candidate,
        metrics: dict[str, float] | None,
        outcome: Outcome = Outcome.COMPLETED,
    ) -> None: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


@runtime_checkable
class AcceptsKnown(Protocol):
    """An optimizer that consults the caller's `KnownHashes` (None: it relies on itself)."""

    known: KnownHashes | None
