"""Workers end to end: the markdown tables (bench/README.md, "Workers end to end (issue 14)").

A row is a dict: system ("morphml", "optuna", "ray", "train-cold", "train-warm"), variant (the
tree MorphML ran from, e.g. "before"/"after"; "-" for the rivals), repeat, setup, database, rate,
n, load_before, load_after, dsync_ms, overhead (text or None).
"""

from __future__ import annotations

import statistics
from typing import Any

Row = dict[str, Any]
Key = tuple[int, str, str]  # repeat, set-up, database


def _key(row: Row) -> Key:
    return row["repeat"], row["setup"], row["database"]


def _num(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _ratio(ours: float | None, theirs: float | None) -> str:
    return f"{ours / theirs:.2f}x" if ours and theirs else "-"


def variants(rows: list[Row]) -> list[str]:
    return list(dict.fromkeys(r["variant"] for r in rows if r["system"] == "morphml"))


def _one(rows: list[Row], system: str, key: Key, variant: str = "-") -> Row | None:
    found = [r for r in rows if (r["system"], r["variant"], _key(r)) == (system, variant, key)]
    return found[0] if found else None


def _rate(row: Row | None) -> float | None:
    return None if row is None else float(row["rate"])


def _header(names: list[str], fixed: list[str]) -> list[str]:
    ours = [f"MorphML {v} evals/s" for v in names] + ["Optuna trials/s"]
    ours += [f"{v} / Optuna" for v in names] + ["Ray Tune trials/s"]
    columns = [*fixed, *ours]
    return [f"| {' | '.join(columns)} |", "|" + "---|" * len(columns)]


def paired_table(rows: list[Row]) -> str:
    """One line per repeat, set-up and database: each MorphML tree beside the rivals, with every
    row's load average (before -> after) and disk probe, in the order they ran."""
    names = variants(rows)
    lines = _header(names, ["repeat", "set-up", "database"])
    lines[0] = lines[0][:-1] + "| worker overhead p50 / p99 | load before -> after | dd ms |"
    lines[1] += "---|---|---|"
    keys = dict.fromkeys(_key(r) for r in rows if r["system"] == "morphml")
    for key in keys:
        ours = [_rate(_one(rows, "morphml", key, v)) for v in names]
        optuna, ray = _rate(_one(rows, "optuna", key)), _rate(_one(rows, "ray", key))
        ran = [r for r in rows if _key(r) == key and not r["system"].startswith("train")]
        overhead = [(_one(rows, "morphml", key, v) or {}).get("overhead") or "n/a" for v in names]
        cells = [str(key[0]), key[1], key[2], *map(_num, ours), _num(optuna)]
        cells += [_ratio(o, optuna) for o in ours] + [_num(ray), "; ".join(overhead)]
        cells.append(", ".join(f"{r['load_before']:.1f} -> {r['load_after']:.1f}" for r in ran))
        cells.append(", ".join(f"{r['dsync_ms']:.0f}" for r in ran))
        lines.append(f"| {' | '.join(cells)} |")
    return "\n".join(lines)


def _median(rows: list[Row], system: str, setup: str, database: str, variant: str) -> float | None:
    rates = [
        r["rate"]
        for r in rows
        if (r["system"], r["setup"], r["database"], r["variant"])
        == (system, setup, database, variant)
    ]
    return statistics.median(rates) if rates else None


def median_table(rows: list[Row]) -> str:
    """Medians over the repeats, with the range of load averages those rows saw."""
    names = variants(rows)
    lines = _header(names, ["set-up", "database"])
    lines[0] = lines[0][:-1] + "| load average (1 min) seen |"
    lines[1] += "---|"
    pairs = dict.fromkeys((r["setup"], r["database"]) for r in rows if r["system"] == "morphml")
    for setup, database in pairs:
        ours = [_median(rows, "morphml", setup, database, v) for v in names]
        optuna = _median(rows, "optuna", setup, database, "-")
        ray = _median(rows, "ray", setup, database, "-")
        loads = [
            r[k]
            for r in rows
            if (r["setup"], r["database"]) == (setup, database)
            and not r["system"].startswith("train")
            for k in ("load_before", "load_after")
        ]
        cells = [setup, database, *map(_num, ours), _num(optuna)]
        cells += [_ratio(o, optuna) for o in ours] + [_num(ray)]
        cells.append(f"{min(loads):.1f}-{max(loads):.1f}")
        lines.append(f"| {' | '.join(cells)} |")
    return "\n".join(lines)


def train_table(rows: list[Row]) -> str:
    """The `train` rows: cold (a fresh process per task) and warm worker processes."""
    lines = [
        "| repeat | tree | worker processes | set-up | evals/s | n | worker overhead p50 / p99 "
        "| load before -> after | dd ms |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in (r for r in rows if r["system"].startswith("train-")):
        lines.append(
            f"| {row['repeat']} | {row['variant']} | {row['system'].removeprefix('train-')} "
            f"| {row['setup']} | {row['rate']:.2f} | {row['n']} | {row['overhead'] or 'n/a'} "
            f"| {row['load_before']:.1f} -> {row['load_after']:.1f} | {row['dsync_ms']:.0f} |"
        )
    return "\n".join(lines)


def report(rows: list[Row]) -> str:
    parts = ["#### Runs, in order", paired_table(rows), "", "#### Medians", median_table(rows)]
    if any(r["system"].startswith("train-") for r in rows):
        parts += ["", "#### `train` (MNIST, one epoch on 2,000 images)", train_table(rows)]
    return "\n".join(parts)
