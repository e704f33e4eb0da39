"""Control-plane bench: the markdown tables printed at the end of a run (and pasted in README)."""

from __future__ import annotations

from typing import Any

Row = dict[str, Any]


def _table(header: list[str], lines: list[list[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(line) + " |" for line in lines]
    return "\n".join(out)


def _ms(triple: list[float]) -> str:
    return " / ".join(f"{value:.1f}" for value in triple)


def _find(rows: list[Row], **match: Any) -> Row | None:
    for row in rows:
        if all(row.get(key) == value for key, value in match.items()):
            return row
    return None


def throughput(rows: list[Row]) -> str:
    return _cycles(rows, "throughput")


def paced(rows: list[Row]) -> str:
    """Like `throughput`, with each evaluation's time instead of peak RSS."""
    return _cycles(rows, "paced")


def _cycles(rows: list[Row], section: str) -> str:
    paced = section == "paced"
    header = ["N", "db", *(["evaluation s"] if paced else []), "cycles/s", "claim p50/95/99 ms"]
    header += ["heartbeat p50/95/99 ms", "complete p50/95/99 ms", "server CPU ms/cycle"]
    header += [] if paced else ["peak RSS MB"]
    lines = [
        [
            str(r["n"]),
            r["db"],
            *([f"{r['eval_seconds']:g}"] if paced else []),
            f"{r['rate']:.0f}",
            _ms(r["claim"]),
            _ms(r["heartbeat"]),
            _ms(r["complete"]),
            f"{r['cpu_ms_per_cycle']:.1f}",
            *([] if paced else [f"{r['peak_rss_mb']:.0f}"]),
            r["machine"],
        ]
        for r in rows
        if r["section"] == section
    ]
    return _table([*header, "machine"], lines)


def _ratio(ours: Row | None, other: Row | None) -> tuple[str, str]:
    if other is None:
        return "-", "-"
    rate = f"{other['rate']:.0f}" + (f" ({other['errors']} errors)" if other["errors"] else "")
    if ours is None or not other["rate"]:
        return rate, "-"
    return rate, f"{ours['rate'] / other['rate']:.1f}x"


def _best_ceiling(rows: list[Row], commits: str) -> float:
    rates = [r["rate"] for r in rows if r.get("system") == f"sql-{commits}-commit"]
    return max(rates, default=0.0)


def ratios(rows: list[Row]) -> str:
    header = ["N", "db", "MorphML cycles/s", "Optuna RDB trials/s", "MorphML / Optuna RDB"]
    header += ["Optuna journal trials/s", "MorphML / journal", "of SQL ceiling (2 / 1 commits)"]
    ceilings = (_best_ceiling(rows, "two"), _best_ceiling(rows, "one"))
    lines = []
    for ours in (r for r in rows if r["section"] == "throughput"):
        rdb = _find(rows, section="optuna", system="optuna-rdb", db=ours["db"], n=ours["n"])
        journal = _find(rows, section="optuna", system="optuna-journal", n=ours["n"])
        share = " / ".join(f"{ours['rate'] / c:.0%}" if c else "-" for c in ceilings)
        line = [str(ours["n"]), ours["db"], f"{ours['rate']:.0f}"]
        lines.append([*line, *_ratio(ours, rdb), *_ratio(ours, journal), share])
    return _table(header, lines)


def _rival_line(r: Row) -> list[str]:
    errors = str(r.get("errors", 0))
    return [r["system"], r["db"], str(r["n"]), f"{r['rate']:.0f}", errors, r["machine"]]


def rivals(rows: list[Row]) -> str:
    header = ["system", "db", "processes / clients", "trials or cycles/s", "errors", "machine"]
    lines = [_rival_line(r) for r in rows if r["section"] in ("optuna", "ceiling")]
    return _table(header, lines)


def scale(rows: list[Row]) -> str:
    header = ["db", "tasks already in DB", "history in", "heartbeats", "N", "cycles/s"]
    header += ["server CPU ms/cycle", "claim p50/99 ms", "heartbeat p50/99 ms"]
    header += ["complete p50/99 ms", "machine"]
    lines = [
        [
            r["db"],
            f"{r['history']:,}",
            f"{r['where']} experiment",
            r.get("heartbeats", "plain"),
            str(r["n"]),
            f"{r['rate']:.0f}",
            f"{r['cpu_ms_per_cycle']:.1f}",
            f"{r['claim'][0]:.1f} / {r['claim'][2]:.1f}",
            f"{r['heartbeat'][0]:.1f} / {r['heartbeat'][2]:.1f}",
            f"{r['complete'][0]:.1f} / {r['complete'][2]:.1f}",
            r["machine"],
        ]
        for r in rows
        if r["section"] == "scale"
    ]
    return _table(header, lines)


def idle(rows: list[Row]) -> str:
    header = ["db", "idle workers", "seconds", "server CPU % of a core", "max RSS MB"]
    header += ["creation -> claim ms (each probe)", "server CPU s per wake-up", "machine"]
    lines = [
        [
            r["db"],
            str(r["n"]),
            f"{r['seconds']:.0f}",
            f"{r['cpu_percent']:.1f}",
            f"{r['max_rss_mb']:.0f}",
            ", ".join(f"{ms:.0f}" for ms in r["wake_ms"]),
            ", ".join(f"{s:.2f}" for s in r["wake_cpu_s"]),
            r["machine"],
        ]
        for r in rows
        if r["section"] == "idle"
    ]
    return _table(header, lines)


def markdown(rows: list[Row]) -> str:
    parts = [
        ("Throughput and latency (N simulated workers)", throughput(rows)),
        ("Ratios", ratios(rows)),
        ("Latency below saturation (evaluations take time)", paced(rows)),
        ("Optuna and the bare-SQL ceiling", rivals(rows)),
        ("Scale", scale(rows)),
        ("Idle long-pollers", idle(rows)),
    ]
    return "\n\n".join(f"### {title}\n\n{table}" for title, table in parts)
