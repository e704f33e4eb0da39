"""SPOS (Guo et al. 2020): a single-path one-shot supernet, then evolution over its paths.

Every training step draws one op per edge uniformly (one genotype, shared by all cells as
CellSpace's is) and trains only that path, so every sub-network's weights are trained about
equally often. The weights then stay fixed and morphml.weight_sharing.evolution searches the
cells, scoring each by its validation accuracy with the shared weights after recalibrating
BatchNorm on a few training batches.

`step`/`progress` in the reports count the supernet epochs and then the generations.
"""

from __future__ import annotations

import random
from typing import Any

import torch

from morphml.space.cell import CellSpace
from morphml.weight_sharing.cells import Path
from morphml.weight_sharing.evolution import Evolution
from morphml.weight_sharing.settings import SearchSettings
from morphml.weight_sharing.state import Stateful, resume, save, snapshot
from morphml.weight_sharing.supernet import Supernet
from morphml.weight_sharing.training import (
    Tensors,
    batches,
    check_finite,
    clip,
    cross_entropy,
    score_path,
)
from morphml.weight_sharing.types import Report


class Spos:
    def __init__(
        self, space: CellSpace, settings: SearchSettings, data: Tensors, device: torch.device
    ) -> None:
        self.space, self.settings, self.data = space, settings, data
        torch.manual_seed(settings.seed)
        self.model = Supernet(space).to(device)
        s = settings
        self.opt = torch.optim.SGD(
            self.model.weight_parameters(), lr=s.lr, momentum=s.momentum,
            weight_decay=s.weight_decay,
        )  # fmt: skip
        self.schedule = torch.optim.lr_scheduler.CosineAnnealingLR(self.opt, s.epochs)
        self.shuffle = torch.Generator().manual_seed(s.seed)  # batches and paths
        self.fingerprint = {"method": "spos", "space": space.to_dict(), "settings": s.to_dict()}
        self.steps = s.epochs + s.generations

    def run(self, report: Report) -> list[tuple[Path, float]]:
        """Train (or go on training) the supernet, then evolve: every scored path with its
        accuracy, best first."""
        for epoch in range(self.resume() + 1, self.settings.epochs + 1):
            loss = check_finite(self.train_epoch(), epoch)
            self.schedule.step()
            probe = self.random_path(torch.Generator().manual_seed(self.settings.seed + epoch))
            report({
                "epoch": epoch, "step": epoch, "progress": epoch / self.steps,
                "supernet_train_loss": loss,
                "supernet_val_accuracy": self.score(probe),  # a random path's, as a probe
            })  # fmt: skip
            save(epoch, self.state(), self.shuffle)
        evolution = Evolution(
            self.model.layout, self.score, self.settings.population, self.settings.seed
        )
        return evolution.run(self.settings.generations, report, self.settings.epochs, self.steps)

    def score(self, path: Path) -> float:
        s = self.settings
        return score_path(self.model, path, self.data, s.batch_size, s.calib_batches, s.seed)

    def random_path(self, generator: torch.Generator) -> Path:
        """A uniform path, drawn from `generator` (whose state the checkpoints keep)."""
        seed = int(torch.randint(2**62, (1,), generator=generator))
        return self.model.layout.draw(random.Random(seed))

    def train_epoch(self) -> float:
        self.model.train()
        d = self.data
        total, count = 0.0, 0
        for batch in batches(
            len(d.y_train), self.settings.batch_size, self.shuffle, d.x_train.device
        ):
            path = self.random_path(self.shuffle)
            self.opt.zero_grad(set_to_none=True)
            loss = cross_entropy(self.model(d.x_train[batch], path), d.y_train[batch])
            loss.backward()  # type: ignore[no-untyped-call]
            clip(self.model.weight_parameters())
            self.opt.step()
            total, count = total + float(loss.detach()) * len(batch), count + len(batch)
        return total / count

    def parts(self) -> dict[str, Stateful]:
        """What a checkpoint holds, by name."""
        return {"model": self.model, "opt": self.opt, "schedule": self.schedule}

    def state(self) -> dict[str, Any]:
        return snapshot(self.fingerprint, self.parts())

    def resume(self) -> int:
        return resume(self.fingerprint, self.parts(), self.shuffle, self.model.alpha.device)
