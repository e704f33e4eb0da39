"""The `train` evaluator's checkpoints and final weights, and resuming from them.

A checkpoint holds all a training needs to go on as if it had never stopped: the model's and the
optimizer's state, the random states (torch, CUDA, NumPy, Python's `random` and the generator
that shuffles the batches) and the epoch it was taken after. On the CPU a resumed training gives
the very metrics an uninterrupted one gives. Files are written atomically (a temporary file, then
a rename), so the agent never uploads half of one, and read with `weights_only=True`: a file from
the store is data, never code.

A checkpoint that cannot be written (a full disk) or read (corrupt, from another model) is never
fatal: the training goes on without it, or starts from epoch 0, and says why in its log.
"""

from __future__ import annotations

import os
import random
import sys
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch import nn

from morphml.evaluators import context

WEIGHTS_FILE = "weights.pt"


def save_checkpoint(
    epoch: int, model: nn.Module, optimizer: torch.optim.Optimizer, shuffle: torch.Generator
) -> None:
    """Write the training's state after `epoch` into the task dir and have the worker upload it
    (inside a worker only: a plain call writes nothing)."""
    if not context.active():
        return
    state = {
        "epoch": epoch,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "rng": random_states(shuffle),
    }
    # A new file per epoch, the last one removed: the worker may still be about to upload it,
    # and an open file keeps what it had, where one renamed over would mix two epochs.
    path = Path(f"checkpoint-{epoch}.pt").resolve()
    if _write(state, path, f"checkpoint after epoch {epoch}"):
        context.save_checkpoint(path, epoch)
        path.with_name(f"checkpoint-{epoch - 1}.pt").unlink(missing_ok=True)


def resume(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    shuffle: torch.Generator,
    device: torch.device,
) -> int:
    """The epoch the context's checkpoint was taken after, its state loaded; 0 without one or
    when it cannot be used (the model and optimizer are then as they were)."""
    path = context.checkpoint()
    if path is None:
        return 0
    try:
        state = torch.load(path, map_location=device, weights_only=True)
        epoch = int(state["epoch"])
        model_before = {k: v.clone() for k, v in model.state_dict().items()}
        try:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
        except BaseException:
            model.load_state_dict(model_before)
            raise
        restore_random_states(state["rng"], shuffle)
    except Exception as exc:  # corrupt, truncated, another architecture: start over
        _warn(f"cannot resume from {path.name} ({type(exc).__name__}: {exc}); from epoch 0")
        return 0
    print(f"morphml: resuming after epoch {epoch} from the last attempt's checkpoint", flush=True)
    return epoch


def warm_start(model: nn.Module, device: torch.device) -> bool:
    """Load the context's warm-start weights (a promotion's lower rung) into `model`; False
    without them or when they do not fit it."""
    path = context.warm_start()
    if path is None:
        return False
    try:
        model.load_state_dict(torch.load(path, map_location=device, weights_only=True))
    except Exception as exc:
        _warn(f"cannot warm-start from {path.name} ({type(exc).__name__}: {exc}); from scratch")
        return False
    print("morphml: warm-started from the lower rung's weights", flush=True)
    return True


def save_weights(model: nn.Module) -> None:
    """The final `state_dict`, uploaded by the worker as the task's `weights.pt` (inside a
    worker only)."""
    if not context.active():
        return
    path = Path(WEIGHTS_FILE).resolve()
    if _write(model.state_dict(), path, "final weights"):
        context.save_weights(path)


def random_states(shuffle: torch.Generator) -> dict[str, Any]:
    """Every random state the training draws from, in types `weights_only` loading accepts."""
    kind, keys, position, has_gauss, gauss = cast(
        tuple[str, np.ndarray[Any, Any], int, int, float], np.random.get_state(legacy=True)
    )
    states: dict[str, Any] = {
        "shuffle": shuffle.get_state(),
        "torch": torch.get_rng_state(),
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), position, has_gauss, gauss],
        "python": random.getstate(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():  # type: ignore[no-untyped-call]
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_random_states(states: dict[str, Any], shuffle: torch.Generator) -> None:
    shuffle.set_state(states["shuffle"])
    torch.set_rng_state(states["torch"])
    kind, keys, position, has_gauss, gauss = states["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), position, has_gauss, gauss))
    version, internal, gauss_next = states["python"]
    random.setstate((version, tuple(internal), gauss_next))
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def _write(state: Any, path: Path, what: str) -> bool:
    temporary = path.with_name(path.name + ".tmp")
    try:
        torch.save(state, temporary)
        os.replace(temporary, path)
    except (OSError, RuntimeError) as exc:  # torch wraps a failed write in a RuntimeError
        temporary.unlink(missing_ok=True)
        _warn(f"cannot write the {what} ({exc}); training goes on without it")
        return False
    return True


def _warn(message: str) -> None:
    print(f"morphml: warning: {message}", file=sys.stderr, flush=True)
