"""`morphml`: the user command line (typer for commands, rich for tables and progress).

Server URL and token come from `--server`/`--token` or MORPHML_SERVER / MORPHML_TOKEN. A user
mistake prints one line and exits non-zero; it never shows a traceback.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from morphml import __version__
from morphml.architecture import Architecture
from morphml.cli import render
from morphml.cli.demo import DemoOptions, run_demo
from morphml.cli.local_search import run_local_search, write_best
from morphml.cli.plots import plot_convergence, plot_pareto
from morphml.cli.specs import load_spec
from morphml.cli.watch import watch_experiment
from morphml.client import Client
from morphml.errors import MorphMLError

app = typer.Typer(
    help="MorphML: distributed neural architecture search.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
console = Console()
errors = Console(stderr=True)


class State:
    server: str = "http://127.0.0.1:8000"
    token: str | None = None

    @classmethod
    def client(cls) -> Client:
        return Client(cls.server, cls.token)


ExperimentId = Annotated[int, typer.Argument(help="Experiment id.", min=1)]


@app.callback()
def options(
    server: Annotated[
        str, typer.Option(envvar="MORPHML_SERVER", help="Control-plane URL.")
    ] = "http://127.0.0.1:8000",
    token: Annotated[
        str | None, typer.Option(envvar="MORPHML_TOKEN", help="Bearer token (admin role).")
    ] = None,
) -> None:
    State.server, State.token = server, token


@app.command()
def version() -> None:
    """Print the MorphML version."""
    console.print(__version__)


@app.command()
def submit(
    spec: Annotated[Path, typer.Argument(help="A .json/.yaml spec, or a .py defining `space`.")],
    watch: Annotated[bool, typer.Option(help="Watch it until it finishes.")] = False,
) -> None:
    """Submit an experiment and print its id."""
    experiment = State.client().create_experiment(load_spec(spec))
    console.print(f"experiment {experiment.id} ({experiment.name}) {experiment.status}")
    if watch:
        watch_experiment(State.client(), experiment.id, console)


@app.command()
def experiments(
    status: Annotated[str | None, typer.Option(help="Only this status.")] = None,
) -> None:
    """List experiments."""
    rows = []
    for e in State.client().experiments(status):
        best = e.best.value if e.best else None
        budget = e.max_evaluations
        rows.append(
            {
                "id": e.id,
                "name": e.name,
                "status": e.status,
                "done": e.done,
                "budget": budget,
                "best": best,
            }
        )
    console.print(render.rows_table(rows, "Experiments"))


@app.command()
def watch(experiment_id: ExperimentId) -> None:
    """Show a progress bar until the experiment finishes."""
    watch_experiment(State.client(), experiment_id, console)


def _rows(experiment_id: int) -> list[dict[str, Any]]:
    client = State.client()
    experiment = client.experiment(experiment_id)
    return render.result_rows(experiment, client.tasks(experiment_id))


@app.command()
def results(
    experiment_id: ExperimentId,
    top: Annotated[int, typer.Option(min=1, help="How many rows.")] = 10,
    format: Annotated[str, typer.Option(help="table, json or csv.")] = "table",
) -> None:
    """The best completed evaluations."""
    if format not in ("table", "json", "csv"):
        raise MorphMLError(f"--format: expected table, json or csv, got {format!r}")
    rows = _rows(experiment_id)[:top]
    if format == "json":
        sys.stdout.write(render.rows_json(rows) + "\n")
    elif format == "csv":
        sys.stdout.write(render.rows_csv(rows))
    else:
        title = f"Experiment {experiment_id}: top {top}"
        columns = render.leaderboard_columns(State.client().experiment(experiment_id))
        console.print(render.rows_table(rows, title, columns))


@app.command()
def export(
    experiment_id: ExperimentId,
    task: Annotated[int | None, typer.Option(help="Task id (default: the best).")] = None,
    format: Annotated[str, typer.Option(help="pytorch or json.")] = "pytorch",
    output: Annotated[Path | None, typer.Option(help="File to write (default: stdout).")] = None,
) -> None:
    """Export an architecture as standalone PyTorch source or JSON."""
    if format not in ("pytorch", "json"):
        raise MorphMLError(f"--format: expected pytorch or json, got {format!r}")
    client = State.client()
    if task is None:
        chosen = client.best(experiment_id)
    else:
        matches = [t for t in client.tasks(experiment_id) if t.id == task]
        if not matches:
            raise MorphMLError(f"--task: experiment {experiment_id} has no task {task}")
        chosen = matches[0]
    architecture = Architecture.from_dict(chosen.candidate["architecture"])
    text = (
        architecture.to_pytorch_source() if format == "pytorch" else architecture.to_json() + "\n"
    )
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text)
        console.print(f"wrote {output}")


def _lifecycle(action: str, experiment_id: int) -> None:
    experiment = getattr(State.client(), action)(experiment_id)
    console.print(f"experiment {experiment.id}: {experiment.status}")


@app.command()
def pause(experiment_id: ExperimentId) -> None:
    """Pause an experiment: no new tasks are handed out."""
    _lifecycle("pause", experiment_id)


@app.command()
def resume(experiment_id: ExperimentId) -> None:
    """Resume a paused experiment."""
    _lifecycle("resume", experiment_id)


@app.command()
def cancel(experiment_id: ExperimentId) -> None:
    """Cancel an experiment; running tasks are told to stop."""
    _lifecycle("cancel", experiment_id)


@app.command()
def workers() -> None:
    """List workers with their status and current tasks."""
    rows = [
        {
            "id": w.id,
            "name": w.name,
            "host": w.host,
            "status": w.status,
            "gpus": len(w.resources.get("gpus") or []),
            "tasks": ",".join(map(str, w.current_tasks)),
            "last seen": w.last_seen_at.isoformat(timespec="seconds") if w.last_seen_at else "",
        }
        for w in State.client().workers()
    ]
    console.print(render.rows_table(rows, "Workers"))


@app.command()
def plot(
    experiment_id: ExperimentId,
    output: Annotated[Path | None, typer.Option(help="PNG file to write.")] = None,
) -> None:
    """Plot convergence (one objective) or the Pareto front (several) as a PNG."""
    client = State.client()
    experiment = client.experiment(experiment_id)
    objectives = render.objectives(experiment)
    tasks = client.tasks(experiment_id)
    output = output or Path(f"experiment-{experiment_id}.png")
    if len(objectives) == 1:
        plot_convergence(render.convergence(experiment, tasks), objectives[0]["metric"], output)
    else:
        x, y = objectives[0]["metric"], objectives[1]["metric"]
        front = [(t.metrics or {}) for t in client.pareto(experiment_id).data]
        done = [(t.metrics or {}) for t in tasks if t.state == "completed"]
        plot_pareto(
            [(m[x], m[y]) for m in done if x in m and y in m],
            [(m[x], m[y]) for m in front if x in m and y in m],
            (x, y),
            output,
        )
    console.print(f"wrote {output}")


@app.command()
def demo(
    tabular: Annotated[bool, typer.Option(help="NAS-Bench-201 via the tabular evaluator.")] = False,
    local: Annotated[bool, typer.Option(help="One process, no server: sample and score.")] = False,
    evaluations: Annotated[int | None, typer.Option(min=1, help="Budget (evaluations).")] = None,
    workers: Annotated[int, typer.Option(min=1, help="Local workers to start.")] = 2,
    out: Annotated[Path, typer.Option(help="Where results go.")] = Path("results"),
) -> None:
    """Run a real NAS experiment: a local server, workers, live progress, results and plots."""
    if local:
        found = run_local_search(evaluations or 12, "proxy", {"dataset": "mnist"}, "naswot", 0)
        console.print(render.rows_table([r.row() for r in found[:10]], "Leaderboard"))
        console.print(f"best architecture written to {write_best(found[0].architecture, out)}")
        return
    run_demo(
        DemoOptions(tabular=tabular, evaluations=evaluations, workers=workers, out=out), console
    )


def main() -> None:
    try:
        app()
    except MorphMLError as exc:
        errors.print(f"error: {exc}", markup=False, highlight=False)
        sys.exit(2)
    except json.JSONDecodeError as exc:
        errors.print(f"error: invalid JSON: {exc}", markup=False)
        sys.exit(2)
