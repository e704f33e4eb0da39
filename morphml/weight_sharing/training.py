"""What DARTS and SPOS share: tensors on the device, batches, scoring a sub-network.

A sub-network's score is its validation accuracy with the shared weights, after its BatchNorm
statistics are re-estimated on a few training batches (SPOS's recalibration): the running
statistics the supernet gathered belong to the mixture of every path, not to this one.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn

from morphml.evaluators.base import EvaluatorError
from morphml.evaluators.datasets import Dataset
from morphml.space.cell import CellSpace
from morphml.weight_sharing.cells import Path
from morphml.weight_sharing.supernet import Supernet

EVAL_BATCH = 512
GRAD_CLIP = 5.0


@dataclass(frozen=True)
class Tensors:
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor


def pick_device(name: str) -> torch.device:
    """ "auto": the GPU when one is visible, else the CPU."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"device: expected 'auto', 'cpu' or 'cuda[:n]', got {name!r}")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device: {name!r} but no GPU is visible")
    try:
        return torch.device(name)
    except RuntimeError as exc:
        raise ValueError(f"device: {exc}") from None


def to_tensors(data: Dataset, space: CellSpace, device: torch.device) -> Tensors:
    """The dataset shaped to the space's input, checked, on `device`."""
    if not isinstance(data, Dataset):
        raise ValueError(f"data: expected a Dataset, got {type(data).__name__}")
    if len(data.y_train) < 2 or len(data.y_val) < 1:
        raise ValueError("data: needs at least 2 training and 1 validation examples")
    try:
        data = data.fit_to_input(space.input_shape)
    except Exception as exc:
        raise ValueError(f"data: {exc}") from None
    if min(int(data.y_train.min()), int(data.y_val.min())) < 0:
        raise ValueError("data: class labels must be integers >= 0")
    if data.num_classes > space.num_classes:
        raise ValueError(
            f"data: {data.num_classes} classes, but the space's networks output {space.num_classes}"
        )
    parts = [torch.as_tensor(a) for a in (data.x_train, data.y_train, data.x_val, data.y_val)]
    x_train, y_train, x_val, y_val = parts
    return Tensors(
        x_train.float().to(device), y_train.long().to(device),
        x_val.float().to(device), y_val.long().to(device),
    )  # fmt: skip


def batches(
    n: int, batch_size: int, generator: torch.Generator, device: torch.device
) -> Iterator[torch.Tensor]:
    """Shuffled index batches covering range(n) once (the last one may be short)."""
    order = torch.randperm(n, generator=generator).to(device)
    for start in range(0, n, batch_size):
        yield order[start : start + batch_size]


def cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return nn.functional.cross_entropy(logits, target)


def check_finite(loss: float, epoch: int) -> float:
    """The epoch's mean training loss; an EvaluatorError when the supernet diverged (NaN or
    infinite inputs, a learning rate far too high), as the `train` evaluator says it."""
    if not math.isfinite(loss):
        raise EvaluatorError(
            f"training diverged: supernet training loss is {loss} at epoch {epoch}"
        )
    return loss


def clip(parameters: list[nn.Parameter]) -> None:
    nn.utils.clip_grad_norm_(parameters, GRAD_CLIP)


@torch.no_grad()
def accuracy(model: Supernet, x: torch.Tensor, y: torch.Tensor, path: Path | None = None) -> float:
    """Accuracy in eval mode (running BatchNorm statistics) of the mixture or of one path."""
    model.eval()
    correct = 0
    for start in range(0, len(y), EVAL_BATCH):
        logits = model(x[start : start + EVAL_BATCH], path)
        correct += int((logits.argmax(dim=1) == y[start : start + EVAL_BATCH]).sum())
    return correct / len(y)


@torch.no_grad()
def recalibrate(
    model: Supernet, path: Path, data: Tensors, batch_size: int, count: int, seed: int
) -> None:
    """Re-estimate every BatchNorm's statistics for `path` from `count` training batches."""
    if count == 0:
        return
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    saved = [m.momentum for m in norms]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # a plain average over the batches below
    model.train()
    generator = torch.Generator().manual_seed(seed)
    for i, batch in enumerate(
        batches(len(data.y_train), batch_size, generator, data.x_train.device)
    ):
        if i == count:
            break
        model(data.x_train[batch], path)
    for norm, momentum in zip(norms, saved, strict=True):
        norm.momentum = momentum


def score_path(
    model: Supernet, path: Path, data: Tensors, batch_size: int, calib_batches: int, seed: int
) -> float:
    """A sub-network's validation accuracy with the shared weights. The BatchNorm statistics are
    put back afterwards, so scoring one path never changes what the next one sees."""
    saved = {
        k: v.clone() for k, v in model.state_dict().items() if "running" in k or "num_batches" in k
    }
    recalibrate(model, path, data, batch_size, calib_batches, seed)
    result = accuracy(model, data.x_val, data.y_val, path)
    model.load_state_dict(saved, strict=False)
    return result
