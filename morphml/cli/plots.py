"""Convergence and Pareto-front plots as PNG files (matplotlib, headless)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from morphml.errors import MorphMLError


def _pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")  # no display on GPU boxes and CI
        import matplotlib.pyplot as plt
    except ImportError:
        raise MorphMLError("plotting needs matplotlib: pip install matplotlib") from None
    return plt


def plot_convergence(points: list[tuple[int, float, float]], metric: str, path: Path) -> Path:
    if not points:
        raise MorphMLError("nothing to plot yet: no completed evaluations")
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    xs = [p[0] for p in points]
    ax.scatter(xs, [p[1] for p in points], s=12, alpha=0.5, label="evaluation")
    ax.step(xs, [p[2] for p in points], where="post", color="C3", label="best so far")
    ax.set_xlabel("evaluations completed")
    ax.set_ylabel(metric)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_pareto(
    points: list[tuple[float, float]],
    front: list[tuple[float, float]],
    labels: tuple[str, str],
    path: Path,
) -> Path:
    if not points:
        raise MorphMLError("nothing to plot yet: no completed evaluations")
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4.5))
    ax.scatter([p[0] for p in points], [p[1] for p in points], s=12, alpha=0.4, label="evaluated")
    ordered = sorted(front)
    ax.plot(
        [p[0] for p in ordered], [p[1] for p in ordered], "o-", color="C3", label="Pareto front"
    )
    ax.set_xlabel(labels[0])
    ax.set_ylabel(labels[1])
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
