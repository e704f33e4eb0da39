"""Workers end to end: the markdown tables (bench/README.md, "Workers end to end (issue 14)").

A row is a dict: system ("morphml", "optuna", "ray", "train-cold", "train-warm"), repeat, setup,
database, rate, n, load_before, load_after, dsync_ms, overhead (text or None).
"""

from __future__ import annotations

import statistics
from typing import Any

Row = dict[str, Any]


def _rate(row: Row | None) -> str:
    return "-" if row is None else f"{row['rate']:.1f}"


def _ratio(ours: Row | None, theirs: Row | None) -> str:
    if ours is None or theirs is None or not theirs["rate"]:
        return "-"
    return f"{ours['rate'] / theirs['rate']:.2f}x"


def _find(rows: list[Row], system: str, repeat: int, setup: str, database: str) -> Row | None:
    for row in rows:
        key = (row["system"], row["repeat"], row["setup"], row["database"])
        if key == (system, repeat, setup, database):
            return row
    return None


def _machine(*rows: Row | None) -> tuple[str, str]:
    present = [row for row in rows if row is not None]
    loads = " / ".join(f"{r['load_before']:.2f} -> {r['load_after']:.2f}" for r in present)
    disks = " / ".join(f"{r['dsync_ms']:.0f}" for r in present)
    return loads, disks


def paired_table(rows: list[Row]) -> str:
    """One line per repeat, set-up and database: MorphML beside its rivals, in run order."""
    lines = [
        "| repeat | set-up | database | MorphML evals/s | Optuna trials/s | MorphML / Optuna "
        "| Ray Tune trials/s | MorphML / Ray | worker overhead p50 / p99 "
        "| load before -> after (MorphML / Optuna / Ray) | dd 100x4k dsync ms |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for ours in (row for row in rows if row["system"] == "morphml"):
        key = (ours["repeat"], ours["setup"], ours["database"])
        optuna = _find(rows, "optuna", *key)
        ray = _find(rows, "ray", *key)
        loads, disks = _machine(ours, optuna, ray)
        lines.append(
            f"| {key[0]} | {key[1]} | {key[2]} | {_rate(ours)} | {_rate(optuna)} "
            f"| {_ratio(ours, optuna)} | {_rate(ray)} | {_ratio(ours, ray)} "
            f"| {ours['overhead'] or 'n/a'} | {loads} | {disks} |"
        )
    return "\n".join(lines)


def _median(rows: list[Row], system: str, setup: str, database: str) -> float | None:
    rates = [
        r["rate"]
        for r in rows
        if (r["system"], r["setup"], r["database"]) == (system, setup, database)
    ]
    return statistics.median(rates) if rates else None


def median_table(rows: list[Row]) -> str:
    """Medians over the repeats, with the range of load averages the rows saw."""
    lines = [
        "| set-up | database | MorphML evals/s | Optuna trials/s | MorphML / Optuna "
        "| Ray Tune trials/s | load average (1 min) seen |",
        "|---|---|---|---|---|---|---|",
    ]
    keys = dict.fromkeys((r["setup"], r["database"]) for r in rows if r["system"] == "morphml")
    for setup, database in keys:
        ours = _median(rows, "morphml", setup, database)
        optuna = _median(rows, "optuna", setup, database)
        ray = _median(rows, "ray", setup, database)
        ratio = f"{ours / optuna:.2f}x" if ours and optuna else "-"
        loads = [
            r[k]
            for r in rows
            if (r["setup"], r["database"]) == (setup, database)
            for k in ("load_before", "load_after")
        ]
        lines.append(
            f"| {setup} | {database} | {_num(ours)} | {_num(optuna)} | {ratio} | {_num(ray)} "
            f"| {min(loads):.2f}-{max(loads):.2f} |"
        )
    return "\n".join(lines)


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def train_table(rows: list[Row]) -> str:
    """The `train` rows: cold (a fresh process per task) and warm worker processes."""
    lines = [
        "| repeat | worker processes | set-up | evals/s | n | worker overhead p50 / p99 "
        "| load before -> after | dd 100x4k dsync ms |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in (r for r in rows if r["system"].startswith("train-")):
        lines.append(
            f"| {row['repeat']} | {row['system'].removeprefix('train-')} | {row['setup']} "
            f"| {row['rate']:.2f} | {row['n']} | {row['overhead'] or 'n/a'} "
            f"| {row['load_before']:.2f} -> {row['load_after']:.2f} | {row['dsync_ms']:.0f} |"
        )
    return "\n".join(lines)


def report(rows: list[Row]) -> str:
    parts = ["### Runs, in order", paired_table(rows), "", "### Medians", median_table(rows)]
    if any(r["system"].startswith("train-") for r in rows):
        parts += ["", "### `train` (MNIST, one epoch on 2,000 images)", train_table(rows)]
    return "\n".join(parts)
