"""The `train` evaluator: train `architecture.to_module()` with PyTorch and validate every epoch.

Params (all optional; declared with their types and ranges in morphml.evaluators.params):
`dataset` ("digits", "mnist" or a .npz path; default "digits"), `epochs` (used when the task has
no budget; default 1), `optimizer` ("adam", "adamw", "sgd"), `lr` (default 1e-3 for Adam/AdamW,
0.05 for SGD), `momentum` (SGD, 0.9), `batch_size` (64), `weight_decay` (0), `seed` (0),
`train_size`/`val_size` (random subsets), `device` ("auto": the GPU when one is visible, else
"cpu"), `timeout_seconds` (read by the worker agent), `data_cache` ("device", the default: the
prepared tensors stay on the device for the next task of the worker's warm evaluation process when
they take at most a quarter of its free memory; "off"). The budget is the number of epochs
(rounded up).

Reports `epoch`, `step`, `progress`, `val_accuracy`, `val_loss` after each epoch and returns
`val_accuracy` (a fraction in [0, 1], like every evaluator), `val_loss`, `num_params`, `flops`,
`train_seconds`, `latency_ms` (one example, median of repeated forward passes). On the CPU a seed
gives identical results run after run.

On a worker it also checkpoints after every epoch and hands its final weights (`weights.pt`,
the `state_dict`) to the worker to upload (morphml.evaluators.checkpoints). A resumed attempt
continues after the epoch of the last attempt's checkpoint and says so (`resumed_from_epoch`);
a promoted task starts from its lower rung's weights (`warm_started: 1`).

A task whose candidate meta says `"phase": "supernet"` (the `weight_sharing` optimizer's first
task) trains a supernet over the meta's cell space instead: morphml.evaluators.supernet.
"""

from __future__ import annotations

import math
import os
import statistics
import time
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from morphml.architecture import Architecture
from morphml.evaluators import checkpoints, context
from morphml.evaluators.base import EvaluatorError, Report
from morphml.evaluators.datasets import Dataset, load_dataset
from morphml.evaluators.params import parse_params

THREADS_ENV = "MORPHML_TORCH_THREADS"
DEFAULT_LR = {"adam": 1e-3, "adamw": 1e-3, "sgd": 0.05}
EVAL_BATCH = 512
LATENCY_RUNS = 20


@dataclass(frozen=True)
class TrainConfig:
    """The evaluator's params, checked, with defaults filled in (types, ranges and defaults are
    declared in morphml.evaluators.params; build it with `from_params`)."""

    dataset: str
    epochs: int
    optimizer: str
    lr: float | None
    momentum: float
    batch_size: int
    weight_decay: float
    seed: int
    train_size: int | None
    val_size: int | None
    device: str
    timeout_seconds: float | None  # read by the worker agent, accepted here
    data_cache: str

    @classmethod
    def from_params(cls, params: dict[str, Any], budget: float | None) -> TrainConfig:
        """The params checked against their declaration; the budget, if any, sets the epochs."""
        parsed = parse_params("train", params)
        if budget is not None:
            parsed["epochs"] = max(1, math.ceil(float(budget) - 1e-9))
        return cls(**parsed)

    @property
    def learning_rate(self) -> float:
        return self.lr if self.lr is not None else DEFAULT_LR[self.optimizer]


def evaluate(
    architecture: Architecture, budget: float | None, params: dict[str, Any], report: Report
) -> dict[str, float]:
    config = TrainConfig.from_params(params, budget)
    meta = context.meta()
    if meta.get("phase") == "supernet":  # the weight_sharing optimizer's one supernet task
        # Imported here: morphml.weight_sharing imports this module.
        from morphml.evaluators import supernet

        return supernet.evaluate(architecture, config, meta, report)
    configure_threads()
    torch.manual_seed(config.seed)
    device = pick_device(config.device)
    x_train, y_train, x_val, y_val = device_data(architecture, config, device)
    model = architecture.to_module().to(device)
    optimizer = make_optimizer(model, config)
    shuffle = torch.Generator().manual_seed(config.seed)
    done = checkpoints.resume(model, optimizer, shuffle, device)
    # A resumed attempt says where it went on from and how many epochs it trained itself.
    resumed = {
        "resumed_from_epoch": float(done),
        "epochs_trained": float(max(0, config.epochs - done)),
    }
    resumed = resumed if done else {}
    if not done and checkpoints.warm_start(model, device):
        resumed = {"warm_started": 1.0}
    started = time.perf_counter()
    val_loss, val_accuracy = math.nan, math.nan
    if done >= config.epochs:  # the last attempt finished training but could not report it
        val_loss, val_accuracy = validate(model, x_val, y_val)
    for epoch in range(done + 1, config.epochs + 1):
        train_epoch(model, optimizer, x_train, y_train, config.batch_size, shuffle)
        val_loss, val_accuracy = validate(model, x_val, y_val)
        if not math.isfinite(val_loss):
            raise EvaluatorError(
                f"training diverged: validation loss is {val_loss} at epoch {epoch}"
            )
        report({"epoch": epoch, "step": epoch, "progress": epoch / config.epochs,
                "val_accuracy": val_accuracy, "val_loss": val_loss})  # fmt: skip
        checkpoints.save_checkpoint(epoch, model, optimizer, shuffle)
    checkpoints.save_weights(model)
    return {
        "val_accuracy": val_accuracy,
        "val_loss": val_loss,
        "num_params": float(architecture.num_params),
        "flops": float(architecture.flops),
        "train_seconds": time.perf_counter() - started,
        "latency_ms": latency_ms(model, architecture.input_shape, device),
        "epochs": float(config.epochs),
        **resumed,
    }


def configure_threads() -> None:
    """Use the slot's share of the cores that the worker passes in MORPHML_TORCH_THREADS."""
    threads = os.environ.get(THREADS_ENV)
    if threads and threads.isdigit() and int(threads) > 0:
        torch.set_num_threads(int(threads))


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise EvaluatorError(f"evaluator.params.device: {name!r} but no GPU is visible")
    return torch.device(name)


def prepare_data(architecture: Architecture, config: TrainConfig) -> Dataset:
    data = load_dataset(config.dataset).subset(config.train_size, config.val_size, config.seed)
    data = data.fit_to_input(architecture.input_shape)
    check_classes(data.num_classes, architecture, config)
    return data


def check_classes(classes: int, architecture: Architecture, config: TrainConfig) -> None:
    outputs = architecture.output_shape[0]
    if classes > outputs:
        raise EvaluatorError(
            f"evaluator.params.dataset: {config.dataset!r} has {classes} classes "
            f"but the architecture outputs {outputs}"
        )


# The last prepared data, on its device, for the next task of a warm process (one entry: a
# worker's tasks nearly always share the experiment's data).
_DEVICE_DATA: dict[tuple[Any, ...], tuple[int, tuple[torch.Tensor, ...]]] = {}
DEVICE_CACHE_SHARE = 0.25


def device_data(
    architecture: Architecture, config: TrainConfig, device: torch.device
) -> tuple[torch.Tensor, ...]:
    """x_train, y_train, x_val, y_val on `device`: from the cache when the last task prepared the
    same ones. The tensors are only read (batches are indexed copies), so sharing them is safe."""
    key = (config.dataset, config.train_size, config.val_size, config.seed,
           architecture.input_shape, str(device))  # fmt: skip
    cached = _DEVICE_DATA.get(key)
    if cached is not None:
        check_classes(cached[0], architecture, config)
        return cached[1]
    _DEVICE_DATA.clear()  # before the new copy is made: the old one may hold the GPU memory
    data = prepare_data(architecture, config)
    tensors = (*_tensors(data.x_train, data.y_train, device),
               *_tensors(data.x_val, data.y_val, device))  # fmt: skip
    if config.data_cache == "device" and _fits(tensors, device):
        _DEVICE_DATA[key] = (data.num_classes, tensors)
    return tensors


def _fits(tensors: tuple[torch.Tensor, ...], device: torch.device) -> bool:
    if device.type != "cuda":
        return True  # host memory: the dataset itself is cached there anyway
    size = sum(t.element_size() * t.nelement() for t in tensors)
    free, _ = torch.cuda.mem_get_info(device)
    return size <= DEVICE_CACHE_SHARE * free


def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    lr, decay = config.learning_rate, config.weight_decay
    if config.optimizer == "sgd":
        return torch.optim.SGD(
            model.parameters(), lr=lr, momentum=config.momentum, weight_decay=decay
        )
    if config.optimizer == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=decay)
    return torch.optim.Adam(model.parameters(), lr=lr, weight_decay=decay)


def train_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    batch_size: int,
    shuffle: torch.Generator,
) -> None:
    model.train()
    order = torch.randperm(len(y), generator=shuffle).to(x.device)
    for start in range(0, len(y), batch_size):
        batch = order[start : start + batch_size]
        optimizer.zero_grad(set_to_none=True)
        loss: Any = nn.functional.cross_entropy(model(x[batch]), y[batch])
        loss.backward()  # through Any: torch leaves Tensor.backward unannotated
        optimizer.step()


@torch.no_grad()
def validate(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """Mean cross-entropy and accuracy on the validation split."""
    model.eval()
    loss_sum, correct = 0.0, 0
    for start in range(0, len(y), EVAL_BATCH):
        logits = model(x[start : start + EVAL_BATCH])
        target = y[start : start + EVAL_BATCH]
        loss_sum += float(nn.functional.cross_entropy(logits, target, reduction="sum"))
        correct += int((logits.argmax(dim=1) == target).sum())
    return loss_sum / len(y), correct / len(y)


@torch.no_grad()
def latency_ms(model: nn.Module, input_shape: tuple[int, ...], device: torch.device) -> float:
    """Median time of one single-example forward pass, after a warm-up."""
    model.eval()
    example = torch.zeros(1, *input_shape, device=device)
    timings = []
    for run in range(LATENCY_RUNS + 3):
        started = time.perf_counter()
        model(example)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if run >= 3:
            timings.append((time.perf_counter() - started) * 1000)
    return statistics.median(timings)


def _tensors(x: Any, y: Any, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)
