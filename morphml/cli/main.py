"""`morphml`: the user command line (typer for commands, rich for tables and progress).

Server URL and token come from `--server`/`--token` or MORPHML_SERVER / MORPHML_TOKEN. A user
mistake prints one line (cut to the terminal's width) and exits non-zero; it never shows a
traceback.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path
from typing import Annotated, NoReturn

import click
import typer
from rich.console import Console

from morphml import __version__
from morphml.architecture import Architecture
from morphml.cli import artifacts as artifact_cli
from morphml.cli import render
from morphml.cli.demo import DemoOptions, run_demo, run_dir_for, wrote_line
from morphml.cli.local_search import LOCAL_COLUMNS, local_rows, run_local_search, write_best
from morphml.cli.plots import plot_convergence, plot_pareto
from morphml.cli.specs import load_spec
from morphml.cli.watch import first_error, watch_experiment
from morphml.client import Client, Task
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
        _watch(experiment.id)


@app.command()
def experiments(
    status: Annotated[str | None, typer.Option(help="Only this status.")] = None,
) -> None:
    """List experiments: status, progress, failed tasks, best value and error."""
    rows = [render.experiment_row(e) for e in State.client().experiments(status)]
    if rows and not any(row["error"] for row in rows):
        for row in rows:
            del row["error"]
    console.print(render.rows_table(rows, "Experiments"))


@app.command()
def watch(experiment_id: ExperimentId) -> None:
    """Show a progress bar until the experiment finishes (Ctrl-C stops watching, not it)."""
    _watch(experiment_id)


def _watch(experiment_id: int) -> None:
    client = State.client()
    try:
        watch_experiment(client, experiment_id, console)
    except KeyboardInterrupt:
        experiment = client.experiment(experiment_id)
        rows = render.result_rows(experiment, client.tasks(experiment_id))
        columns = render.leaderboard_columns(experiment, rows)
        title = f"Experiment {experiment_id} so far: {render.counts_text(experiment)}"
        console.print(render.rows_table(rows[:10], title, columns))
        console.print(
            f"stopped watching; experiment {experiment_id} is {experiment.status} on the server "
            f"(morphml cancel {experiment_id} stops it)"
        )
        raise typer.Exit(130) from None


@app.command()
def results(
    experiment_id: ExperimentId,
    top: Annotated[int, typer.Option(min=1, help="How many rows.")] = 10,
    format: Annotated[str, typer.Option(help="table, json or csv.")] = "table",
) -> None:
    """The best completed evaluations (with each candidate's config and architecture in JSON
    and CSV); exits 1 when nothing has completed."""
    if format not in ("table", "json", "csv"):
        raise MorphMLError(f"--format: expected table, json or csv, got {format!r}")
    client = State.client()
    experiment = client.experiment(experiment_id)
    rows = render.result_rows(experiment, client.tasks(experiment_id))
    error = first_error(client, experiment)
    if not rows:
        because = f"; first error: {error}" if error else ""
        _fail(
            f"experiment {experiment_id} ({experiment.status}) has no completed evaluation: "
            f"{render.counts_text(experiment)}{because}",
            code=1,
        )
    rows = rows[:top]
    if format == "json":
        sys.stdout.write(render.rows_json(rows) + "\n")
    elif format == "csv":
        sys.stdout.write(render.rows_csv(rows))
    else:
        title = f"Experiment {experiment_id}: top {top}"
        console.print(render.rows_table(rows, title, render.leaderboard_columns(experiment, rows)))
        console.print(f"{experiment.status}: {render.counts_text(experiment)}", markup=False)
        if error:
            console.print(
                f"first error: {render.one_line(error)}",
                markup=False,
                overflow="ellipsis",
                no_wrap=True,
            )


@app.command()
def export(
    experiment_id: ExperimentId,
    task: Annotated[int | None, typer.Option(help="Task id (default: the best).")] = None,
    format: Annotated[str, typer.Option(help="pytorch or json.")] = "pytorch",
    output: Annotated[Path | None, typer.Option(help="File to write (default: stdout).")] = None,
    weights: Annotated[
        Path | None, typer.Option(help="Also download the task's trained weights to this file.")
    ] = None,
) -> None:
    """Export an architecture as standalone PyTorch source or JSON (with --weights, its trained
    weights too, sha256-checked; the source then says how to load them)."""
    if format not in ("pytorch", "json"):
        raise MorphMLError(f"--format: expected pytorch or json, got {format!r}")
    client = State.client()
    chosen = _export_task(client, experiment_id, task)
    architecture = Architecture.from_dict(chosen.candidate["architecture"])
    if format == "json":
        text = architecture.to_json() + "\n"
    else:
        note = "" if weights is None else artifact_cli.weights_note(weights, "Net")
        text = note + architecture.to_pytorch_source()
    if weights is not None:
        stored = artifact_cli.task_weights(client, chosen.id)
        path = artifact_cli.download(client, chosen.id, stored.name, weights)
        # stderr: with no --output the source itself goes to stdout
        done = f"wrote {path} (task {chosen.id}'s {stored.name}, sha256 checked)"
        errors.print(done, markup=False)
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text)
        console.print(f"wrote {output}")


def _export_task(client: Client, experiment_id: int, task: int | None) -> Task:
    if task is None:
        return client.best(experiment_id)
    matches = [t for t in client.tasks(experiment_id) if t.id == task]
    if not matches:
        raise MorphMLError(f"--task: experiment {experiment_id} has no task {task}")
    return matches[0]


@app.command()
def artifacts(experiment_id: ExperimentId) -> None:
    """List an experiment's artifacts: kept weights first, best task first, with its value."""
    rows = artifact_cli.artifact_rows(State.client(), experiment_id)
    console.print(render.rows_table(rows, f"Experiment {experiment_id}: artifacts"))


@app.command()
def download(
    task: Annotated[int | None, typer.Argument(help="Task id.", min=1)] = None,
    name: Annotated[str | None, typer.Argument(help="Artifact name, e.g. weights.pt.")] = None,
    best: Annotated[
        int | None, typer.Option(help="An experiment id: its best task's weights.", min=1)
    ] = None,
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="File or directory (default: NAME).")
    ] = None,
) -> None:
    """Download a task's artifact (sha256-checked), or with --best EXPERIMENT the best task's
    weights."""
    client = State.client()
    if best is not None and task is None:
        chosen = artifact_cli.best_weights(client, best)
        task, name = chosen.task_id, chosen.name
    elif best is not None or task is None or name is None:
        raise MorphMLError("give TASK NAME, or --best EXPERIMENT (not both)")
    path = artifact_cli.download(client, task, name, output)
    console.print(f"wrote {path} (task {task}'s {name}, sha256 checked)", markup=False)


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
    tabular: Annotated[
        bool, typer.Option(help="NAS-Bench-201 CIFAR-10 via the tabular evaluator.")
    ] = False,
    local: Annotated[
        bool, typer.Option(help="One process, no server: sample and score with proxies.")
    ] = False,
    evaluations: Annotated[
        int | None, typer.Option(min=1, help="Budget (default: 30 MNIST, 200 tabular, 12 local).")
    ] = None,
    workers: Annotated[int, typer.Option(min=1, help="Local workers to start.")] = 2,
    out: Annotated[Path, typer.Option(help="Where run directories go.")] = Path("results"),
) -> None:
    """Run a real NAS experiment: a local server, workers, live progress, results and plots."""
    if local:
        _demo_local(evaluations or 12, out)
        return
    run_demo(
        DemoOptions(tabular=tabular, evaluations=evaluations, workers=workers, out=out), console
    )


def _demo_local(evaluations: int, out: Path) -> None:
    run_dir = run_dir_for(out, "local")
    console.print(f"run directory: {run_dir}")
    found = run_local_search(evaluations, "proxy", {"dataset": "mnist"}, "naswot", 0)
    rows = local_rows(found)
    title = f"Leaderboard ({len(rows)} architectures, by naswot)"
    console.print(render.rows_table(rows[:10], title, LOCAL_COLUMNS))
    (run_dir / "results.json").write_text(render.rows_json(rows) + "\n")
    (run_dir / "results.csv").write_text(render.rows_csv(rows))
    if found:
        write_best(found[0].architecture, run_dir)
    console.print(wrote_line(run_dir), markup=False, highlight=False, soft_wrap=True)


def terminal_width() -> int | None:
    """The width error lines are cut to: $COLUMNS, else the terminal's; None when neither (a
    pipe or a log file gets the whole line)."""
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    if sys.stderr.isatty():
        return os.get_terminal_size(sys.stderr.fileno()).columns
    return None


def error_line(message: str) -> str:
    """`error: ...` on one line that fits the terminal. A server's refusal drops the request
    (`POST /v1/experiments: 422 x` -> `422 x`): the reason is what the user needs."""
    message = re.sub(r"^(GET|POST|PUT|PATCH|DELETE) /\S*: ", "", message)
    message = re.sub(r"\[Errno -?\d+\] ", "", message)
    return render.one_line(f"error: {message}", terminal_width())


def _fail(message: str, code: int = 2) -> NoReturn:
    sys.stdout.flush()
    sys.stderr.write(error_line(message) + "\n")
    sys.exit(code)


def _usage_errors() -> tuple[type[Exception], ...]:
    """What the command-line parser raises for a usage mistake: click's exceptions, or those of
    the copy of click that newer typer releases carry (typer.TyperException)."""
    found: list[type[Exception]] = [click.ClickException]
    vendored = getattr(typer, "TyperException", None)
    if isinstance(vendored, type) and issubclass(vendored, Exception):
        found.append(vendored)
    return tuple(found)


def main() -> None:
    try:
        code = app(standalone_mode=False)
    except _usage_errors() as exc:  # a bad option, a missing argument, no command at all
        if type(exc).__name__ == "NoArgsIsHelpError":
            exc.show()  # type: ignore[attr-defined]  # the help text: `morphml` alone
            sys.exit(2)
        context = getattr(exc, "ctx", None)
        where = f"{context.command_path}: " if context is not None else ""
        message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
        _fail(f"{where}{message} (see --help)", int(getattr(exc, "exit_code", 2)))
    except (click.exceptions.Abort, typer.Abort):
        _fail("aborted", 130)
    except MorphMLError as exc:  # APIError included: the server's reason
        _fail(str(exc))
    except json.JSONDecodeError as exc:
        _fail(f"invalid JSON: {exc}")
    sys.exit(code if isinstance(code, int) else 0)
