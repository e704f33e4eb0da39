"""`morphml-worker`: parse flags, discover resources, build the HTTP client, run the agent.

The first SIGTERM/SIGINT starts a graceful stop (no new tasks, a grace period for running ones);
a second one kills the children and exits at once.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import sys
from types import FrameType
from typing import Any

import httpx
from pydantic import ValidationError

from worker.agent import Agent
from worker.config import WorkerSettings
from worker.http import FailoverTransport
from worker.resources import Machine, ResourceError, cpu_count, memory_mb, select_gpus

log = logging.getLogger("morphml.worker")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="morphml-worker",
        description="Pull NAS tasks from a MorphML server and evaluate them on this machine. "
        "Every flag can also be set as MORPHML_WORKER_<FLAG> (e.g. MORPHML_WORKER_TOKEN).",
    )
    add = parser.add_argument
    add(
        "--server",
        help="control-plane URL, e.g. http://10.0.0.5:8000; several replicas: comma-separated",
    )
    add("--token", help="bearer token with the worker role")
    add("--name", help="worker name shown by the server (default: host name)")
    add("--gpus", help='"auto" (default), "none", or GPU indices such as "0,1"')
    add("--slots", type=int, help="evaluations at once: per GPU, or on the CPU (default 1)")
    add("--labels", help="k=v,... matched against the labels experiments require")
    add("--allow", nargs="+", action="extend", help="module prefixes `python` evaluators may use")
    add("--work-dir", help="task dirs and the outbox of unacknowledged results")
    add("--grace-seconds", type=float, help="on SIGTERM, time running tasks get (default 20)")
    add("--poll-seconds", type=int, help="long-poll wait of each claim, 0..60 (default 20)")
    add("--task-timeout-seconds", type=float, help="fail a task that runs longer (default none)")
    add(
        "--max-tasks-per-process",
        type=int,
        help="tasks each slot's warm evaluation process runs before a fresh one replaces it "
        "(default 1000; 1: a fresh process per task)",
    )
    add(
        "--max-process-memory-mb",
        type=int,
        help="replace an evaluation process whose memory exceeds this after a task "
        "(default: the machine's memory divided by the slots)",
    )
    add("--log-level", help="DEBUG, INFO (default), WARNING")
    return parser


def load_settings(argv: list[str] | None) -> WorkerSettings:
    args = vars(build_parser().parse_args(argv))
    given: dict[str, Any] = {key: value for key, value in args.items() if value is not None}
    if isinstance(given.get("allow"), list):
        given["allow"] = [
            p.strip() for item in given["allow"] for p in item.split(",") if p.strip()
        ]
    return WorkerSettings(**given)


def build_client(settings: WorkerSettings) -> httpx.Client:
    headers = {"Authorization": f"Bearer {settings.token}"} if settings.token else {}
    servers = settings.servers
    # Several replicas: a transport that fails over between them (worker/http.py).
    transport = FailoverTransport(servers) if len(servers) > 1 else None
    return httpx.Client(base_url=servers[0], headers=headers, timeout=30.0, transport=transport)


def main(argv: list[str] | None = None) -> None:
    try:
        settings = load_settings(argv)
    except ValidationError as exc:
        sys.exit(f"morphml-worker: {_first_error(exc)}")
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    # httpx logs every request at INFO; the agent logs one line per task instead.
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.root.level))
    try:
        gpus = select_gpus(settings.gpus, os.environ)
    except ResourceError as exc:
        sys.exit(f"morphml-worker: {exc}")
    machine = Machine(socket.gethostname(), cpu_count(), memory_mb(), tuple(gpus))
    with build_client(settings) as client:
        agent = Agent(client, settings, machine=machine)
        _install_signal_handlers(agent)
        code = agent.run()
    sys.exit(code)


def _install_signal_handlers(agent: Agent) -> None:
    def handle(signum: int, frame: FrameType | None) -> None:
        if agent.stopping.is_set():
            log.warning("second %s: killing running evaluations and exiting now", _name(signum))
            agent.abort()
            logging.shutdown()
            os._exit(1)
        log.info("%s received", _name(signum))
        agent.request_stop()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)


def _name(signum: int) -> str:
    return signal.Signals(signum).name


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    field = ".".join(str(part) for part in error["loc"]) or "settings"
    hint = " (--server or MORPHML_WORKER_SERVER)" if field == "server" else ""
    return f"{field}{hint}: {error['msg']}"
