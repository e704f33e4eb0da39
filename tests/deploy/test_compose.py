"""The one-machine layout (deploy/compose.yaml, deploy/haproxy.cfg) and the Dockerfiles agree
with what the server and worker need: no container engine runs here, so these are read, not run
(the install scripts they call are run by test_install_scripts.py)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def compose() -> dict[str, Any]:
    return dict(yaml.safe_load((DEPLOY / "compose.yaml").read_text()))


def seconds(text: str) -> float:
    match = re.fullmatch(r"(\d+)s", text)
    assert match, text
    return float(match.group(1))


def test_two_replicas_share_postgres_behind_a_proxy_that_checks_readiness() -> None:
    services = compose()["services"]
    replicas = [name for name in services if name.startswith("server-")]
    assert len(replicas) == 2
    urls = {services[name]["environment"]["MORPHML_DATABASE_URL"] for name in replicas}
    assert len(urls) == 1 and "@postgres:5432/" in urls.pop()
    config = (DEPLOY / "haproxy.cfg").read_text()
    assert "option httpchk GET /readyz" in config
    for name in replicas:
        assert re.search(rf"server {name} {name}:8000 check", config), name
    # Claims long-poll up to 60 s: the proxy must wait longer than that for an answer.
    timeout = re.search(r"timeout server (\d+)s", config)
    assert timeout and int(timeout.group(1)) > 60
    drain = float(services[replicas[0]]["environment"]["MORPHML_SHUTDOWN_DRAIN_SECONDS"])
    assert drain < seconds(services[replicas[0]]["stop_grace_period"])


def test_workers_reach_the_proxy_and_get_time_to_hand_back() -> None:
    services = compose()["services"]
    worker = services["worker"]
    assert worker["environment"]["MORPHML_WORKER_SERVER"] == "http://proxy:8080"
    grace = float(worker["environment"]["MORPHML_WORKER_GRACE_SECONDS"])
    assert seconds(worker["stop_grace_period"]) > grace + 20  # + the default long-poll
    assert "volumes" not in worker  # one anonymous volume each, never a shared outbox


def test_images_run_their_install_scripts_as_non_root() -> None:
    for name, script in (("server", "install-server.sh"), ("worker", "install-worker.sh")):
        dockerfile = (DEPLOY / f"{name}.Dockerfile").read_text()
        assert f"/src/deploy/{script} /src" in dockerfile
        assert "USER 10001" in dockerfile
        assert "VOLUME" in dockerfile
    server = (DEPLOY / "server.Dockerfile").read_text()
    assert "HEALTHCHECK" in server and "/healthz" in server
    worker = (DEPLOY / "worker.Dockerfile").read_text()
    assert "ARG TORCH=cuda" in worker and "FROM base-${TORCH}" in worker
