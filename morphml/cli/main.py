"""`morphml`: the user command line (typer for commands, rich for tables)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from morphml import __version__
from morphml.cli.local_search import run_local_search, write_best
from morphml.errors import MorphMLError

app = typer.Typer(help="MorphML: distributed neural architecture search.", no_args_is_help=True)
console = Console()


@app.command()
def version() -> None:
    """Print the MorphML version."""
    console.print(__version__)


@app.command()
def demo(
    evaluations: Annotated[int, typer.Option(min=1, help="Architectures to evaluate.")] = 12,
    evaluator: Annotated[str, typer.Option(help="Evaluator kind.")] = "proxy",
    params: Annotated[str, typer.Option(help="Evaluator params as JSON.")] = '{"batch_size": 64}',
    metric: Annotated[str, typer.Option(help="Metric to maximise.")] = "score",
    seed: Annotated[int, typer.Option(help="Search seed.")] = 0,
    out: Annotated[Path, typer.Option(help="Where to write the best model.")] = Path("results"),
) -> None:
    """Run a small local search: sample, build and score architectures; export the best."""
    try:
        results = run_local_search(evaluations, evaluator, json.loads(params), metric, seed)
    except (MorphMLError, json.JSONDecodeError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    table = Table("rank", "hash", "params", "MFLOPs", metric, "seconds", title="Leaderboard")
    for rank, result in enumerate(results[:10], start=1):
        a = result.architecture
        value = result.metrics.get(metric, float("nan"))
        mflops = f"{a.flops / 1e6:.2f}"
        table.add_row(
            str(rank),
            a.hash[:12],
            f"{a.num_params:,}",
            mflops,
            f"{value:.4g}",
            f"{result.seconds:.2f}",
        )
    console.print(table)
    path = write_best(results[0].architecture, out)
    console.print(f"best architecture written to {path} (standalone PyTorch source)")


def main() -> None:
    app()
