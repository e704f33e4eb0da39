"""DARTS (Liu et al. 2019) over a dense CellSpace: bilevel search of one shared genotype.

The training split is cut in two fixed halves: the supernet's weights learn on the first
(SGD, cosine schedule, gradient clipping), the architecture weights `alpha` on the second
(Adam), one step each per batch. First order takes alpha's gradient at the current weights;
second order at the weights after one virtual SGD step, with the Hessian-vector product of
the unrolled step approximated by finite differences (the paper's eq. 7-8).

Collapse (skip_connect taking over the cell as the search goes on) is held off twice: the
derivation keeps at most `max_skip` skip edges (morphml.weight_sharing.derive), and with
`early_stop`, a search whose raw argmax cell holds more than `max_skip` skip edges for
`patience` epochs in a row stops there, DARTS+ style, and derives from the architecture
weights of the last epoch before that run began (before skip connections took over).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch.func import functional_call

from morphml.space.cell import CellSpace
from morphml.weight_sharing.cells import Path
from morphml.weight_sharing.derive import derive, raw_path
from morphml.weight_sharing.settings import SearchSettings
from morphml.weight_sharing.state import Stateful, resume, save, snapshot
from morphml.weight_sharing.supernet import Supernet
from morphml.weight_sharing.training import (
    Tensors,
    accuracy,
    batches,
    check_finite,
    clip,
    cross_entropy,
    score_path,
)
from morphml.weight_sharing.types import Report

FINITE_DIFFERENCE = 0.01  # the paper's epsilon, divided by the gradient's norm


@dataclass
class Collapse:
    """Epochs in a row over the skip limit, and the alpha of the last epoch within it."""

    limit: int | None
    patience: int
    enabled: bool
    over: int = 0
    safe_alpha: torch.Tensor | None = None
    stopped: bool = False

    def update(self, alpha: torch.Tensor, skips: int) -> None:
        if self.limit is None:
            return
        if skips > self.limit:
            self.over += 1
        else:
            self.over = 0
            self.safe_alpha = alpha.detach().clone()
        self.stopped = self.enabled and self.over >= self.patience

    def alpha_to_derive(self, alpha: torch.Tensor) -> torch.Tensor:
        if self.stopped and self.safe_alpha is not None:
            return self.safe_alpha
        return alpha.detach()

    def state_dict(self) -> dict[str, Any]:
        return {"over": self.over, "safe_alpha": self.safe_alpha, "stopped": self.stopped}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.over, self.stopped = int(state["over"]), bool(state["stopped"])
        self.safe_alpha = state["safe_alpha"]


class Darts:
    """One DARTS search: the supernet, both optimizers and the schedule."""

    def __init__(
        self, space: CellSpace, settings: SearchSettings, data: Tensors, device: torch.device
    ) -> None:
        self.space, self.settings, self.data = space, settings, data
        torch.manual_seed(settings.seed)
        self.model = Supernet(space).to(device)
        s = settings
        self.w_opt = torch.optim.SGD(
            self.model.weight_parameters(), lr=s.lr, momentum=s.momentum,
            weight_decay=s.weight_decay,
        )  # fmt: skip
        self.a_opt = torch.optim.Adam(
            [self.model.alpha], lr=s.arch_lr, betas=(0.5, 0.999), weight_decay=s.arch_weight_decay
        )
        self.schedule = torch.optim.lr_scheduler.CosineAnnealingLR(self.w_opt, s.epochs)
        self.shuffle = torch.Generator().manual_seed(s.seed)
        # The two fixed halves of the training split: weights learn on one, alpha on the other.
        halves = torch.randperm(len(data.y_train), generator=torch.Generator().manual_seed(s.seed))
        half = len(halves) // 2
        self.w_idx, self.a_idx = halves[:half].to(device), halves[half : 2 * half].to(device)
        self.collapse = Collapse(s.max_skip, s.patience, s.early_stop)
        self.fingerprint = {"method": "darts", "space": space.to_dict(), "settings": s.to_dict()}

    def run(self, report: Report) -> list[Path]:
        """Train (or go on training), then the derived cells, best first."""
        done = self.resume()
        for epoch in range(done + 1, self.settings.epochs + 1):
            if self.collapse.stopped:
                break
            loss = check_finite(self.train_epoch(), epoch)
            self.schedule.step()
            self.end_epoch(epoch, loss, report)
        alpha = self.collapse.alpha_to_derive(self.model.alpha)
        return derive(self.space, alpha, self.settings.max_skip, self.settings.top_k)

    def score(self, path: Path) -> float:
        """A derived cell's validation accuracy with the shared weights."""
        s = self.settings
        return score_path(self.model, path, self.data, s.batch_size, s.calib_batches, s.seed)

    def end_epoch(self, epoch: int, loss: float, report: Report) -> None:
        layout = self.model.layout
        skips = layout.skips(raw_path(layout, self.model.alpha))
        self.collapse.update(self.model.alpha, skips)
        # An early stop ends the search: its last report says so and is complete.
        progress = 1.0 if self.collapse.stopped else epoch / self.settings.epochs
        report({
            "epoch": epoch, "step": epoch, "progress": progress,
            "supernet_train_loss": loss,
            "supernet_val_accuracy": accuracy(self.model, self.data.x_val, self.data.y_val),
            "skip_edges": skips, "early_stopped": float(self.collapse.stopped),
        })  # fmt: skip
        save(epoch, self.state(), self.shuffle)

    def train_epoch(self) -> float:
        """One pass over the weights' half, an alpha step before each weight step."""
        self.model.train()
        d, size = self.data, self.settings.batch_size
        a_batches = batches(len(self.a_idx), size, self.shuffle, self.a_idx.device)
        total, count = 0.0, 0
        for w_batch in batches(len(self.w_idx), size, self.shuffle, self.w_idx.device):
            a_batch = next(a_batches)  # the halves are the same size, so these never run out
            xw, yw = d.x_train[self.w_idx[w_batch]], d.y_train[self.w_idx[w_batch]]
            xa, ya = d.x_train[self.a_idx[a_batch]], d.y_train[self.a_idx[a_batch]]
            self.alpha_step(xw, yw, xa, ya)
            self.w_opt.zero_grad(set_to_none=True)
            loss = cross_entropy(self.model(xw), yw)
            loss.backward()  # type: ignore[no-untyped-call]
            clip(self.model.weight_parameters())
            self.w_opt.step()
            total, count = total + float(loss.detach()) * len(yw), count + len(yw)
        return total / count

    def alpha_step(
        self, xw: torch.Tensor, yw: torch.Tensor, xa: torch.Tensor, ya: torch.Tensor
    ) -> None:
        self.a_opt.zero_grad(set_to_none=True)
        if self.settings.order == 1:
            loss = cross_entropy(self.model(xa), ya)
            (grad,) = torch.autograd.grad(loss, [self.model.alpha])
        else:
            grad = self.unrolled_gradient(xw, yw, xa, ya)
        self.model.alpha.grad = grad
        self.a_opt.step()

    def unrolled_gradient(
        self, xw: torch.Tensor, yw: torch.Tensor, xa: torch.Tensor, ya: torch.Tensor
    ) -> torch.Tensor:
        """d/dalpha L_val(w - xi * dL_train/dw, alpha), xi being the current weight lr."""
        names = [n for n, _ in self.model.named_parameters() if n != "alpha"]
        weights = self.model.weight_parameters()
        xi = float(self.w_opt.param_groups[0]["lr"])
        grads = torch.autograd.grad(cross_entropy(self.model(xw), yw), weights)
        unrolled = {}
        for name, w, g in zip(names, weights, grads, strict=True):
            step = g + self.settings.weight_decay * w
            buffer = self.w_opt.state.get(w, {}).get("momentum_buffer")
            if buffer is not None:
                step = step + self.settings.momentum * buffer
            unrolled[name] = (w - xi * step).detach().requires_grad_(True)
        loss = cross_entropy(functional_call(self.model, unrolled, (xa,)), ya)
        alpha_grad, *w_grads = torch.autograd.grad(loss, [self.model.alpha, *unrolled.values()])
        return alpha_grad - xi * self.hessian_product(weights, w_grads, xw, yw)

    def hessian_product(
        self, weights: list[torch.nn.Parameter], v: list[torch.Tensor], x: torch.Tensor,
        y: torch.Tensor,
    ) -> torch.Tensor:  # fmt: skip
        """(d2 L_train / dalpha dw) v by central differences around the current weights."""
        norm = torch.cat([g.reshape(-1) for g in v]).norm()
        r = FINITE_DIFFERENCE / max(float(norm), 1e-12)
        grads = []
        for sign in (1.0, -2.0):
            with torch.no_grad():
                for w, g in zip(weights, v, strict=True):
                    w.add_(g, alpha=sign * r)
            loss = cross_entropy(self.model(x), y)
            grads.append(torch.autograd.grad(loss, [self.model.alpha])[0])
        with torch.no_grad():
            for w, g in zip(weights, v, strict=True):
                w.add_(g, alpha=r)  # back to where they were
        return (grads[0] - grads[1]) / (2 * r)

    def parts(self) -> dict[str, Stateful]:
        """What a checkpoint holds, by name."""
        return {
            "model": self.model,
            "w_opt": self.w_opt,
            "a_opt": self.a_opt,
            "schedule": self.schedule,
            "collapse": self.collapse,
        }

    def state(self) -> dict[str, Any]:
        return snapshot(self.fingerprint, self.parts())

    def resume(self) -> int:
        return resume(self.fingerprint, self.parts(), self.shuffle, self.model.alpha.device)
