"""Workers given several server URLs (replicas) fail over between them: unit tests of the
transport and the settings, and a real worker that keeps completing tasks after the replica it
was using is kill -9'd."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from morphml.cli.processes import Processes, free_port, script, wait_ready
from morphml.client import Client
from tests.integration.test_chaos import chaos_spec
from tests.server.support import fresh_postgres_database, require_postgres
from worker.cli import build_client, load_settings
from worker.http import FailoverTransport


class Replicas:
    """A MockTransport whose hosts in `down` refuse connections; it records who was asked."""

    def __init__(self, *down: str) -> None:
        self.down = set(down)
        self.asked: list[tuple[str, str, str]] = []

    def handle(self, request: httpx.Request) -> httpx.Response:
        host = request.url.netloc.decode()
        self.asked.append((host, request.url.path, request.headers["Host"]))
        if host in self.down:
            raise httpx.ConnectError("connection refused", request=request)
        return httpx.Response(200, json={"host": host})


def client_over(replicas: Replicas, servers: list[str]) -> httpx.Client:
    transport = FailoverTransport(servers, inner=httpx.MockTransport(replicas.handle))
    return httpx.Client(base_url=servers[0], transport=transport)


def test_a_refused_connection_sends_the_same_request_to_the_next_replica() -> None:
    replicas = Replicas("a:1")
    with client_over(replicas, ["http://a:1", "http://b:2"]) as client:
        assert client.post("/v1/tasks/claim", json={}).json() == {"host": "b:2"}
        assert client.post("/v1/tasks/claim", json={}).json() == {"host": "b:2"}  # stays
    assert replicas.asked == [
        ("a:1", "/v1/tasks/claim", "a:1"),
        ("b:2", "/v1/tasks/claim", "b:2"),
        ("b:2", "/v1/tasks/claim", "b:2"),
    ]


def test_it_comes_back_to_the_first_when_the_second_goes_and_keeps_path_prefixes() -> None:
    replicas = Replicas("a")
    servers = ["https://a/morphml", "https://b/api/morphml"]
    with client_over(replicas, servers) as client:
        client.get("/readyz")
        replicas.down = {"b"}
        assert client.get("/readyz").json() == {"host": "a"}
    assert [path for _, path, _ in replicas.asked] == [
        "/morphml/readyz",
        "/api/morphml/readyz",
        "/api/morphml/readyz",
        "/morphml/readyz",
    ]


def test_when_every_replica_refuses_the_caller_gets_the_error() -> None:
    with client_over(Replicas("a", "b"), ["http://a", "http://b"]) as client:
        with pytest.raises(httpx.ConnectError):
            client.get("/healthz")


def test_other_transport_errors_move_on_for_the_next_request_only() -> None:
    asked: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        asked.append(request.url.host)
        if request.url.host == "a":
            raise httpx.ReadTimeout("slow", request=request)
        return httpx.Response(204)

    transport = FailoverTransport(["http://a", "http://b"], inner=httpx.MockTransport(handle))
    with httpx.Client(base_url="http://a", transport=transport) as client:
        with pytest.raises(httpx.ReadTimeout):  # not re-sent here: the caller's retry does that
            client.post("/v1/tasks/1/complete", json={})
        assert client.post("/v1/tasks/1/complete", json={}).status_code == 204
    assert asked == ["a", "b"]


def test_settings_take_a_comma_separated_list_of_servers() -> None:
    settings = load_settings(["--server", "http://a:8000/, https://b:8000"])
    assert settings.servers == ["http://a:8000", "https://b:8000"]
    with build_client(settings) as client:
        assert isinstance(client._transport, FailoverTransport)
    single = load_settings(["--server", "http://a:8000/"])
    assert single.server == "http://a:8000" and single.servers == ["http://a:8000"]
    with build_client(single) as client:
        assert not isinstance(client._transport, FailoverTransport)


@pytest.mark.parametrize(
    ("server", "message"),
    [("http://a, b:2", "'b:2'"), ("http://a,http://a/", "listed twice"), (" , ", "got none")],
)
def test_a_bad_server_list_names_the_bad_entry(server: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load_settings(["--server", server])


@pytest.mark.slow
@pytest.mark.postgres
def test_a_worker_fails_over_when_its_replica_is_killed(tmp_path: Path) -> None:
    """One worker listing both replicas; the one it uses is kill -9'd and stays down."""
    require_postgres()
    spec = {**chaos_spec(), "name": "failover", "budget": {"max_evaluations": 40}}
    spec["evaluator"]["params"]["sleep_scale"] = 0.0001
    with fresh_postgres_database() as database_url:
        servers = Processes(tmp_path / "logs")
        worker = Processes(tmp_path / "logs")
        ports = [free_port(), free_port()]
        urls = [f"http://127.0.0.1:{port}" for port in ports]
        try:
            for name, port in zip("ab", ports, strict=True):
                argv = [script("morphml-server"), "serve", "--port", str(port)]
                servers.start(name, [*argv, "--database-url", database_url])
            for url in urls:
                wait_ready(url, servers)
            argv = [script("morphml-worker"), "--server", ",".join(urls), "--gpus", "none"]
            argv += ["--slots", "2", "--poll-seconds", "2", "--work-dir", str(tmp_path / "w")]
            worker.start("worker", argv)
            with Client(urls[1]) as client:
                experiment = client.create_experiment(spec)
                wait_for(client, experiment.id, lambda c: c.get("completed", 0) >= 10)
                _, first = servers.running.pop(0)
                os.killpg(first.pid, signal.SIGKILL)  # the replica the worker was using
                first.wait()
                done = wait_for(client, experiment.id, lambda c: c.get("completed", 0) >= 40)
        finally:
            worker.stop_all(grace=5.0)
            servers.stop_all(grace=5.0)
        assert done["completed"] == 40
        log_text = (tmp_path / "logs" / "worker.log").read_text()
        assert f"failing over to {urls[1]}" in log_text


def wait_for(
    client: Client, experiment_id: int, reached: Callable[[dict[str, int]], bool]
) -> dict[str, int]:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        counts = dict(client.experiment(experiment_id).counts)
        if reached(counts):
            return counts
        time.sleep(0.3)
    raise AssertionError(f"not reached in time: {client.experiment(experiment_id).counts}")
