"""The train evaluator's per-epoch checkpoint upload beside the epoch it follows (issue 15).

One demo CNN (the biggest of a few sampled from the demo's space) trains MNIST epochs the way the
`train` evaluator does; after each epoch its checkpoint (model, optimizer, RNG states: the same
dict `checkpoints.save_checkpoint` writes) is saved and, on alternate epochs, uploaded through the
server by the worker's own `upload` on a thread of its own while the next epoch trains, as the
worker's `CheckpointUploader` does. An epoch with an upload beside it against one without says
whether the upload delays training; the upload's own time against the epoch's says what share of
the epoch it occupies.
"""

from __future__ import annotations

import os
import random
import statistics
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from morphml.architecture import Architecture
from morphml.cli.demo import mnist_spec
from morphml.cli.local_search import demo_space
from morphml.evaluators import checkpoints
from morphml.evaluators.train import (
    TrainConfig,
    device_data,
    make_optimizer,
    train_epoch,
    validate,
)
from worker.artifacts import Saved, upload
from worker.http import ServerApi


@dataclass(frozen=True)
class EpochFigures:
    architecture_params: int
    checkpoint_mb: float
    save_s: list[float]  # torch.save of the checkpoint: synchronous in the child, part of an epoch
    upload_s: list[float]  # on the uploader thread, overlapping the next epoch
    epoch_alone_s: list[float]
    epoch_beside_upload_s: list[float]
    loads: list[float]

    def row(self) -> dict[str, Any]:
        alone, beside = (
            statistics.median(self.epoch_alone_s),
            statistics.median(self.epoch_beside_upload_s),
        )
        upload_s = statistics.median(self.upload_s)
        return {
            "params": self.architecture_params,
            "checkpoint_mb": round(self.checkpoint_mb, 2),
            "epoch_alone_s": round(alone, 3),
            "epoch_beside_upload_s": round(beside, 3),
            "slowdown": round(beside / alone - 1, 4),
            "upload_s": round(upload_s, 4),
            "upload_share": round(upload_s / alone, 4),
            "save_s": round(statistics.median(self.save_s), 4),
            "save_share": round(statistics.median(self.save_s) / alone, 4),
            "load": [round(x, 2) for x in self.loads],
        }


def demo_architecture(samples: int = 20) -> Architecture:
    """The demo space's biggest of `samples` draws: its checkpoint bounds the others'."""
    rng = random.Random(0)
    drawn = [demo_space().sample(rng) for _ in range(samples)]
    return max(drawn, key=lambda a: a.num_params)


def measure_epochs(
    api: ServerApi, task_id: int, lease_token: str, scratch: Path, *, epochs: int, train_size: int
) -> EpochFigures:
    """`epochs` pairs of epochs, one without and one beside an upload, interleaved."""
    params = {**mnist_spec(1)["evaluator"]["params"], "train_size": train_size, "val_size": 500}
    architecture = demo_architecture()
    config = TrainConfig.from_params(params, None)
    torch.manual_seed(config.seed)
    device = torch.device("cpu")
    x_train, y_train, x_val, y_val = device_data(architecture, config, device)
    model = architecture.to_module()
    optimizer = make_optimizer(model, config)
    shuffle = torch.Generator().manual_seed(config.seed)
    figures = EpochFigures(architecture.num_params, 0.0, [], [], [], [], [])

    def one_epoch() -> float:
        started = time.perf_counter()
        train_epoch(model, optimizer, x_train, y_train, config.batch_size, shuffle)
        validate(model, x_val, y_val)
        return time.perf_counter() - started

    one_epoch()  # warm-up: the first epoch pays for allocations and thread pools
    for epoch in range(1, 2 * epochs + 1):
        path = _save(scratch / f"checkpoint-{epoch}.pt", epoch, model, optimizer, shuffle, figures)
        figures.loads.append(_load1())
        if epoch % 2:
            figures.epoch_alone_s.append(one_epoch())
            continue
        saved = Saved("checkpoint.pt", path, "checkpoint", epoch)
        uploader = threading.Thread(
            target=_timed_upload, args=(api, task_id, lease_token, saved, figures)
        )
        uploader.start()
        figures.epoch_beside_upload_s.append(one_epoch())
        uploader.join()
    size_mb = path.stat().st_size / 2**20
    return EpochFigures(**{**figures.__dict__, "checkpoint_mb": size_mb})


def _save(
    path: Path, epoch: int, model: Any, optimizer: Any, shuffle: Any, figures: EpochFigures
) -> Path:
    started = time.perf_counter()
    state = {"epoch": epoch, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
             "rng": checkpoints.random_states(shuffle)}  # fmt: skip
    torch.save(state, path)
    figures.save_s.append(time.perf_counter() - started)
    return path


def _timed_upload(
    api: ServerApi, task_id: int, token: str, saved: Saved, figures: EpochFigures
) -> None:
    started = time.perf_counter()
    upload(api, task_id, token, saved, deadline=time.monotonic() + 60)
    figures.upload_s.append(time.perf_counter() - started)


def _load1() -> float:
    return os.getloadavg()[0]
