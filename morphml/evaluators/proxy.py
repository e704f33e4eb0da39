"""The `proxy` evaluator: zero-cost scores of an untrained network on one batch, in a second or so.

Returns `synflow` (log of the summed |theta * dR/dtheta| for R the output of the all-ones input
through |theta|, Tanaka et al. 2020), `naswot` (log-determinant of the kernel of binary
activation codes, Mellor et al. 2021), `jacob_cov` (how decorrelated the input Jacobians are),
`grad_norm` (L2 norm of the loss gradient), `num_params` and `flops`. Higher is better for all
but the last two. Params (declared in morphml.evaluators.params): `dataset` (as `train`, default
"digits"), `batch_size` (64, at least 2), `seed` (0), `device` ("auto"). Every score is finite;
degenerate networks score the floor of -1e9 rather than -inf so results stay JSON. The budget is
ignored.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from morphml.architecture import Architecture
from morphml.evaluators.base import Report
from morphml.evaluators.datasets import load_dataset
from morphml.evaluators.params import parse_params
from morphml.evaluators.train import configure_threads, pick_device

FLOOR = -1e9
ACTIVATIONS = (nn.ReLU, nn.GELU, nn.SiLU, nn.Tanh, nn.Sigmoid)


def evaluate(
    architecture: Architecture, budget: float | None, params: dict[str, Any], report: Report
) -> dict[str, float]:
    params = parse_params("proxy", params)
    configure_threads()
    seed = params["seed"]
    torch.manual_seed(seed)
    device = pick_device(params["device"])
    x, y = one_batch(architecture, params, seed, device)
    model = architecture.to_module().to(device)
    return {
        "synflow": _finite(synflow(architecture, device)),
        "naswot": _finite(naswot(model, x)),
        "jacob_cov": _finite(jacob_cov(model, x)),
        "grad_norm": _finite(grad_norm(model, x, y)),
        "num_params": float(architecture.num_params),
        "flops": float(architecture.flops),
    }


def one_batch(
    architecture: Architecture, params: dict[str, Any], seed: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    size = params["batch_size"]
    data = load_dataset(params["dataset"]).subset(size, 1, seed)
    data = data.fit_to_input(architecture.input_shape)
    x, y = torch.from_numpy(data.x_train), torch.from_numpy(data.y_train)
    return x.to(device), (y % architecture.output_shape[0]).to(device)


def synflow(architecture: Architecture, device: torch.device) -> float:
    # A fresh float64 copy: the score multiplies magnitudes through every layer and overflows
    # float32 on deep networks; |theta| and eval mode make it data- and sign-independent.
    model = architecture.to_module().to(device=device, dtype=torch.float64).eval()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.abs_()
    ones = torch.ones(1, *architecture.input_shape, device=device, dtype=torch.float64)
    model(ones).sum().backward()
    with torch.no_grad():
        total = sum(
            float((p * p.grad).abs().sum()) for p in model.parameters() if p.grad is not None
        )
    return math.log(total) if total > 0 else FLOOR


def naswot(model: nn.Module, x: torch.Tensor) -> float:
    """log|K| where K[i, j] counts the activation units on which examples i and j agree."""
    codes: list[torch.Tensor] = []

    def record(module: nn.Module, inputs: Any, output: torch.Tensor) -> None:
        codes.append((output.detach().flatten(1) > 0).double())

    hooks = [m.register_forward_hook(record) for m in model.modules() if isinstance(m, ACTIVATIONS)]
    try:
        with torch.no_grad():
            model.train()(x)
    finally:
        for hook in hooks:
            hook.remove()
    if not codes:
        return FLOOR
    c = torch.cat(codes, dim=1)
    kernel = c @ c.t() + (1 - c) @ (1 - c).t()
    sign, logdet = torch.linalg.slogdet(kernel)
    return float(logdet) if float(sign) > 0 else FLOOR


def jacob_cov(model: nn.Module, x: torch.Tensor) -> float:
    """-sum(log(lambda + k) + 1/(lambda + k)) over the eigenvalues of the Jacobians' correlation."""
    inputs = x.clone().requires_grad_(True)
    model.train()(inputs).sum().backward()
    assert inputs.grad is not None
    jacobians = inputs.grad.flatten(1).double()
    correlation = torch.corrcoef(jacobians)
    if not bool(torch.isfinite(correlation).all()):
        return FLOOR
    eigenvalues = torch.linalg.eigvalsh(correlation).clamp(min=0)
    k = 1e-5
    return -float((torch.log(eigenvalues + k) + 1.0 / (eigenvalues + k)).sum())


def grad_norm(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.zero_grad(set_to_none=True)
    loss: Any = nn.functional.cross_entropy(model.train()(x), y)
    loss.backward()  # through Any: torch leaves Tensor.backward unannotated
    squares = [float(p.grad.pow(2).sum()) for p in model.parameters() if p.grad is not None]
    return math.sqrt(sum(squares))


def _finite(value: float) -> float:
    return value if math.isfinite(value) else FLOOR
