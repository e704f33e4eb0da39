"""Checkpoints of a supernet search, so that a resumed task goes on after its last epoch.

A checkpoint holds the epoch, the supernet (weights and `alpha`), every optimizer and schedule
state, the random states (morphml.evaluators.checkpoints.random_states, the batch shuffler
included) and the method's own bookkeeping, with a fingerprint of the space and settings: a
checkpoint of another search is ignored, never half-loaded. Each epoch writes a new file
atomically and removes the one before (the worker may still be uploading it). Outside a
worker nothing is written and nothing is resumed, like the `train` evaluator.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

import torch

from morphml.evaluators import context
from morphml.evaluators.checkpoints import random_states, restore_random_states

FILE_PREFIX = "supernet-checkpoint"


class Stateful(Protocol):
    """What a checkpoint holds a part of: a module, an optimizer, a schedule, DARTS' collapse
    bookkeeping."""

    def state_dict(self) -> Any: ...

    def load_state_dict(self, state: Any) -> Any: ...


def snapshot(fingerprint: dict[str, Any], parts: Mapping[str, Stateful]) -> dict[str, Any]:
    """A search's state to `save`: its fingerprint and every part's state by name."""
    return {"fingerprint": fingerprint, **{name: p.state_dict() for name, p in parts.items()}}


def resume(
    fingerprint: dict[str, Any],
    parts: Mapping[str, Stateful],
    shuffle: torch.Generator,
    device: torch.device,
) -> int:
    """Load the context's checkpoint of this search into `parts` and the random states; the
    epoch it was taken after (0: none, start from scratch)."""
    state = load(fingerprint, device)
    if state is None:
        return 0
    for name, part in parts.items():
        part.load_state_dict(state[name])
    restore_random_states(state["rng"], shuffle)
    return int(state["epoch"])


def save(epoch: int, state: dict[str, Any], shuffle: torch.Generator) -> None:
    """Write `state` (with the random states) after `epoch` and hand it to the worker."""
    if not context.active():
        return
    path = Path(f"{FILE_PREFIX}-{epoch}.pt").resolve()
    temporary = path.with_name(path.name + ".tmp")
    try:
        torch.save({**state, "epoch": epoch, "rng": random_states(shuffle)}, temporary)
        os.replace(temporary, path)
    except (OSError, RuntimeError) as exc:  # a full disk is not a reason to stop the search
        temporary.unlink(missing_ok=True)
        _warn(f"cannot write the supernet checkpoint after epoch {epoch} ({exc})")
        return
    context.save_checkpoint(path, epoch)
    path.with_name(f"{FILE_PREFIX}-{epoch - 1}.pt").unlink(missing_ok=True)


def load(fingerprint: dict[str, Any], device: torch.device) -> dict[str, Any] | None:
    """The context's checkpoint when it is one of this very search, else None."""
    path = context.checkpoint()
    if path is None:
        return None
    try:
        state: dict[str, Any] = torch.load(path, map_location=device, weights_only=True)
        if state.get("fingerprint") != fingerprint:
            raise ValueError("it belongs to another space or other settings")
        int(state["epoch"])
    except Exception as exc:  # corrupt, truncated, another search: start over
        _warn(f"cannot resume from {path.name} ({type(exc).__name__}: {exc}); from epoch 0")
        return None
    print(f"morphml: resuming the supernet after epoch {state['epoch']}", flush=True)
    return state


def _warn(message: str) -> None:
    print(f"morphml: warning: {message}", file=sys.stderr, flush=True)
