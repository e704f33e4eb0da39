"""Artifacts bench (issue 15): a checkpoint through a real `morphml-server` against a plain copy.

    python -m bench.artifacts [--size-mb 100] [--repeats 3] [--epochs 3] [--quick] [--json PATH]

One `morphml-server` on SQLite with its default file store (a directory beside the database),
one claimed task. Interleaved repeats of: a plain copy of the file on the same disk (with fsync,
as the store does), the worker's upload (`worker.artifacts.upload`: sha256 pass, streamed PUT,
the server hashes, writes, fsyncs and renames) and the user's download (`Client.download_artifact`:
streamed to a temporary file, sha256-checked, renamed). The server's RSS is sampled every 10 ms
during each transfer. Then the per-epoch checkpoint of the demo's CNN on MNIST against the epoch
(bench/artifacts_epoch.py). Every figure is printed with the load average beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

import httpx

from bench.artifacts_epoch import measure_epochs
from bench.cp_env import ServerProcess, machine_note, running_server, scratch_dir
from morphml.cli.local_search import demo_space
from morphml.client import Client
from worker.artifacts import Saved, upload
from worker.http import ServerApi

GOAL_RATIO, GOAL_RSS_MB, GOAL_SHARE = 0.5, 100.0, 0.02


def claimed_task(url: str) -> tuple[int, str]:
    """One experiment, one registered worker, one claimed task: the lease the uploads use."""
    spec = {
        "name": "artifacts-bench",
        "search_space": demo_space().to_dict(),
        "optimizer": {"name": "random", "params": {}},
        "objectives": [{"metric": "val_accuracy", "direction": "maximize"}],
        "evaluator": {"kind": "proxy", "params": {"dataset": "mnist"}},
        "budget": {"max_evaluations": 1},
        "parallelism": 1,
        "lease_seconds": 3600,  # no heartbeats here: the lease must outlast the bench
    }
    worker = {"name": "bench", "host": "bench", "resources": {"cpus": 1, "memory_mb": 1024}}
    with httpx.Client(base_url=url, timeout=30) as http:
        created = http.post("/v1/experiments", json=spec)
        if created.status_code != 201:
            raise RuntimeError(f"experiment refused: {created.text}")
        worker_id = http.post("/v1/workers", json=worker).raise_for_status().json()["id"]
        task = http.post("/v1/tasks/claim", json={"worker_id": worker_id, "wait_seconds": 5})
        body = task.raise_for_status().json()
        return int(body["id"]), str(body["lease_token"])


class RssSampler:
    """The server's RSS every 10 ms while a transfer runs: the baseline and the peak above it."""

    def __init__(self, server: ServerProcess) -> None:
        self.server, self.samples = server, [server.rss_mb()]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.01):
            self.samples.append(self.server.rss_mb())

    @contextmanager
    def during(self) -> Iterator[RssSampler]:
        self._thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            self._thread.join()

    def growth_mb(self) -> float:
        return max(self.samples) - self.samples[0]


def plain_copy(source: Path, target: Path) -> None:
    shutil.copyfile(source, target)
    with target.open("rb+") as handle:
        os.fsync(handle.fileno())


def timed(action: Callable[[], object], sampler: RssSampler | None = None) -> float:
    started = time.perf_counter()
    if sampler is None:
        action()
    else:
        with sampler.during():
            action()
    return time.perf_counter() - started


def transfers(server: ServerProcess, scratch: Path, size_mb: int, repeats: int) -> dict[str, Any]:
    task_id, token = claimed_task(server.url)
    source = scratch / "checkpoint.pt"
    with source.open("wb") as handle:
        for _ in range(size_mb):
            handle.write(os.urandom(2**20))
    saved = Saved("checkpoint.pt", source, "checkpoint", 1)
    rows: dict[str, list[float]] = {
        k: [] for k in ("copy", "upload", "download", "up_rss", "down_rss", "load")
    }
    with httpx.Client(base_url=server.url, timeout=120) as http, Client(server.url) as client:
        api = ServerApi(http)
        for _ in range(repeats):
            rows["load"].append(os.getloadavg()[0])
            rows["copy"].append(timed(lambda: plain_copy(source, scratch / "copy.pt")))
            up, down = RssSampler(server), RssSampler(server)
            send = partial(upload, api, task_id, token, saved, deadline=time.monotonic() + 300)
            rows["upload"].append(timed(send, up))
            rows["download"].append(
                timed(
                    lambda: client.download_artifact(task_id, "checkpoint.pt", scratch / "down.pt"),
                    down,
                )
            )
            rows["up_rss"].append(up.growth_mb())
            rows["down_rss"].append(down.growth_mb())
            (scratch / "copy.pt").unlink()
            (scratch / "down.pt").unlink()
    return _transfer_row(rows, size_mb, server.peak_rss_mb())


def _transfer_row(rows: dict[str, list[float]], size_mb: int, peak_mb: float) -> dict[str, Any]:
    copy = statistics.median(rows["copy"])
    return {
        "size_mb": size_mb,
        "copy_s": round(copy, 3),
        "upload_s": round(statistics.median(rows["upload"]), 3),
        "download_s": round(statistics.median(rows["download"]), 3),
        "upload_ratio": round(copy / statistics.median(rows["upload"]), 3),
        "download_ratio": round(copy / statistics.median(rows["download"]), 3),
        "upload_rss_growth_mb": round(max(rows["up_rss"]), 1),
        "download_rss_growth_mb": round(max(rows["down_rss"]), 1),
        "server_peak_rss_mb": round(peak_mb, 1),
        "each": {k: [round(x, 3) for x in v] for k, v in rows.items()},
    }


def run(size_mb: int, repeats: int, epochs: int, train_size: int) -> dict[str, Any]:
    with scratch_dir() as scratch:
        note = machine_note(scratch)
        with running_server(
            f"sqlite:///{scratch / 'morphml.db'}", scratch / "server.log"
        ) as server:
            transfer = transfers(server, scratch, size_mb, repeats)
            with httpx.Client(base_url=server.url, timeout=120) as http:
                task_id, token = claimed_task(server.url)
                epoch = measure_epochs(ServerApi(http), task_id, token, scratch,
                                       epochs=epochs, train_size=train_size).row()  # fmt: skip
    return {"machine": note.text(), "transfer": transfer, "epoch": epoch}


def report(result: dict[str, Any]) -> str:
    t, e = result["transfer"], result["epoch"]
    lines = [
        f"machine before the run: {result['machine']}",
        f"{t['size_mb']} MB, median of {len(t['each']['copy'])} interleaved"
        f" (load {t['each']['load']}):",
        f"  plain copy+fsync {t['copy_s']} s | upload {t['upload_s']} s = {t['upload_ratio']}x"
        f" | download {t['download_s']} s = {t['download_ratio']}x (goal >= {GOAL_RATIO}x)",
        f"  server RSS growth during upload {t['upload_rss_growth_mb']} MB, download"
        f" {t['download_rss_growth_mb']} MB, peak {t['server_peak_rss_mb']} MB"
        f" (goal: flat, not +{GOAL_RSS_MB:.0f})",
        f"demo CNN {e['params']} params, checkpoint {e['checkpoint_mb']} MB, load {e['load']}:",
        f"  epoch {e['epoch_alone_s']} s alone, {e['epoch_beside_upload_s']} s beside an upload"
        f" ({e['slowdown']:+.1%}); upload {e['upload_s']} s = {e['upload_share']:.2%} of an epoch"
        f" (goal < {GOAL_SHARE:.0%}); torch.save {e['save_s']} s = {e['save_share']:.2%}",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=3, help="pairs of epochs (alone, beside)")
    parser.add_argument("--train-size", type=int, default=5000, help="MNIST images per epoch")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: the smoke test's")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if args.quick:
        args.size_mb, args.repeats, args.epochs, args.train_size = 4, 1, 1, 200
    result = run(args.size_mb, args.repeats, args.epochs, args.train_size)
    print(report(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
