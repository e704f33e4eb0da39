"""A normal stop of `morphml-server` while workers long-poll is clean: open claims answer 204 at
once, the process exits 0, and the log has no error (it used to wait out uvicorn's graceful
shutdown timeout, then log an ERROR and a CancelledError traceback per open claim).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from morphml.cli.processes import free_port, wait_ready
from tests.server.support import worker_body

pytestmark = pytest.mark.slow


class _Process:
    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        self.process = process

    def check_alive(self) -> None:
        assert self.process.poll() is None, "server exited during start"


def _command() -> list[str]:
    script = Path(sys.executable).with_name("morphml-server")
    return [str(script)] if script.exists() else [sys.executable, "-m", "server.cli"]


def _claim(url: str, worker_id: int, result: dict[str, Any]) -> None:
    with httpx.Client(base_url=url, timeout=60) as http:
        response = http.post("/v1/tasks/claim", json={"worker_id": worker_id, "wait_seconds": 30})
    result["status"] = response.status_code
    result["answered_at"] = time.monotonic()


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_stop_answers_open_long_polls_and_exits_cleanly(
    tmp_path: Path, stop_signal: signal.Signals
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MORPHML_")}
    env["MORPHML_CLAIM_REPOLL_SECONDS"] = "30"  # only the stop can end the wait early
    log_path = tmp_path / "server.log"
    database = f"sqlite:///{tmp_path / 'morphml.db'}"
    args = ["serve", "--host", "127.0.0.1", "--port", str(port), "--database-url", database]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [*_command(), *args], env=env, stdout=log, stderr=subprocess.STDOUT
        )
    try:
        wait_ready(url, _Process(process))
        worker_id = httpx.post(f"{url}/v1/workers", json=worker_body(), timeout=10).json()["id"]
        results: list[dict[str, Any]] = [{}, {}]
        claims = [threading.Thread(target=_claim, args=(url, worker_id, r)) for r in results]
        for claim in claims:
            claim.start()
        time.sleep(1.5)  # both claims are parked in their long-poll
        assert all(not result for result in results), results
        stopped_at = time.monotonic()
        process.send_signal(stop_signal)
        for claim in claims:
            claim.join(timeout=20)
        returncode = process.wait(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
    log_text = log_path.read_text(errors="replace")
    for result in results:
        assert result.get("status") == 204, (result, log_text)
        assert result["answered_at"] - stopped_at < 5, (result, log_text)
    assert returncode == 0, log_text
    assert "ERROR" not in log_text and "Traceback" not in log_text, log_text
    assert "Application shutdown complete" in log_text, log_text


def test_a_draining_stop_fails_readiness_first_and_keeps_serving(tmp_path: Path) -> None:
    """With MORPHML_SHUTDOWN_DRAIN_SECONDS: on SIGTERM /readyz answers 503 at once (a load
    balancer takes the replica out), open long-polls answer 204, new requests are still served
    (closing their connections), and the process exits 0 once the drain is over."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MORPHML_")}
    env.update(MORPHML_CLAIM_REPOLL_SECONDS="30", MORPHML_SHUTDOWN_DRAIN_SECONDS="3")
    log_path = tmp_path / "server.log"
    database = f"sqlite:///{tmp_path / 'morphml.db'}"
    args = ["serve", "--host", "127.0.0.1", "--port", str(port), "--database-url", database]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [*_command(), *args], env=env, stdout=log, stderr=subprocess.STDOUT
        )
    try:
        wait_ready(url, _Process(process))
        worker_id = httpx.post(f"{url}/v1/workers", json=worker_body(), timeout=10).json()["id"]
        result: dict[str, Any] = {}
        claim = threading.Thread(target=_claim, args=(url, worker_id, result))
        claim.start()
        time.sleep(1.0)
        stopped_at = time.monotonic()
        process.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        assert httpx.get(f"{url}/readyz", timeout=5).status_code == 503
        assert httpx.get(f"{url}/healthz", timeout=5).status_code == 200
        served = httpx.get(f"{url}/v1/workers", timeout=5)
        assert served.status_code == 200 and served.headers["connection"] == "close"
        claim.join(timeout=10)
        assert result.get("status") == 204 and result["answered_at"] - stopped_at < 2
        returncode = process.wait(timeout=20)
        exited_after = time.monotonic() - stopped_at
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
    log_text = log_path.read_text(errors="replace")
    assert returncode == 0, log_text
    assert exited_after >= 3, log_text
    assert "ERROR" not in log_text and "Traceback" not in log_text, log_text
