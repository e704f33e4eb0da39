"""Auth roles, the body-size limit and input validation: clear 4xx answers, nothing stored."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from morphml.wire import WORKER_CREDENTIAL_HEADER
from server.cli import serve
from server.config import Settings
from tests.server.support import spec, worker_body

ADMIN, WORKER, OLD_ADMIN = "admin-secret-0001", "worker-secret-0001", "old-admin-secret-1"


@pytest.fixture
def secured(make_client: Callable[..., TestClient]) -> TestClient:
    return make_client(
        admin_token=f"{OLD_ADMIN},{ADMIN}", worker_token=WORKER, metrics_public=False
    )


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_missing_or_wrong_token_is_401(secured: TestClient) -> None:
    assert secured.get("/v1/experiments").status_code == 401
    response = secured.post("/v1/workers", json=worker_body(), headers=_auth("guess"))
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json() == {"detail": "missing or invalid bearer token"}


def test_worker_token_cannot_use_admin_routes(secured: TestClient) -> None:
    assert secured.get("/v1/experiments", headers=_auth(WORKER)).status_code == 403
    assert secured.post("/v1/experiments", json=spec(), headers=_auth(WORKER)).status_code == 403
    assert secured.get("/v1/workers", headers=_auth(WORKER)).status_code == 403
    assert secured.get("/metrics", headers=_auth(WORKER)).status_code == 403
    assert secured.post("/v1/workers", json=worker_body(), headers=_auth(WORKER)).status_code == 201


def test_every_listed_admin_token_works(secured: TestClient) -> None:
    for token in (OLD_ADMIN, ADMIN):
        assert secured.get("/v1/experiments", headers=_auth(token)).status_code == 200
    assert secured.get("/healthz").status_code == 200
    assert secured.get("/metrics", headers=_auth(ADMIN)).status_code == 200


def test_placeholder_tokens_are_refused() -> None:
    with pytest.raises(ValueError, match="placeholder"):
        Settings(admin_token="changethis")


def test_no_tokens_refuses_non_loopback_bind() -> None:
    assert serve(Settings(host="0.0.0.0", database_url="sqlite://"), "info") == 2


def test_oversized_body_is_413(make_client: Callable[..., TestClient]) -> None:
    client = make_client(max_body_bytes=2048)
    big = spec(name="x" * 100, evaluator={"kind": "proxy", "params": {"blob": "y" * 4096}})
    response = client.post("/v1/experiments", json=big)
    assert response.status_code == 413 and "detail" in response.json()

    def chunks() -> Iterator[bytes]:
        yield b'{"name": "'
        yield b"z" * 4096
        yield b'"}'

    streamed = client.post(
        "/v1/workers", content=chunks(), headers={"content-type": "application/json"}
    )
    assert streamed.status_code == 413
    assert client.get("/v1/experiments").json()["count"] == 0


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        (
            {"search_space": {"type": "sequential", "name": "s", "layers": [{"type": "warp"}]}},
            "warp",
        ),
        ({"search_space": {"type": "nope"}}, "type"),
        ({"optimizer": {"name": "no_such_optimizer", "params": {}}}, "optimizer.name"),
        ({"optimizer": {"name": "random", "params": {"colour": 1}}}, "optimizer.params"),
        ({"evaluator": {"kind": "magic", "params": {}}}, "evaluator.kind"),
        ({"objectives": []}, "objectives"),
        ({"objectives": [{"metric": "a", "direction": "sideways"}]}, "direction"),
        ({"parallelism": 0}, "parallelism"),
        ({"budget": {"max_evaluations": 10**30}}, "max_evaluations"),
        ({"priority": 10**40}, "priority"),
        ({"name": "bad\x00name"}, "name"),
        ({"budjet": {}}, "budjet"),
        ({"pruner": {"name": "oracle", "params": {}}}, "pruner.name"),
        ({"pruner": {"name": "median", "params": {"warmup_steps": -1}}}, "pruner.params"),
    ],
)
def test_invalid_spec_is_422_naming_the_field(
    client: TestClient, overrides: dict[str, Any], field: str
) -> None:
    response = client.post("/v1/experiments", json=spec(**overrides))
    assert response.status_code == 422, response.text
    assert field in str(response.json()["detail"])
    assert client.get("/v1/experiments").json()["count"] == 0


def test_malformed_bodies_are_4xx_never_500(client: TestClient) -> None:
    bad_json = client.post(
        "/v1/experiments", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert bad_json.status_code == 422
    worker = client.post("/v1/workers", json=worker_body()).json()["id"]
    client.post("/v1/experiments", json=spec())
    task = client.post("/v1/tasks/claim", json={"worker_id": worker, "wait_seconds": 0}).json()
    url = f"/v1/tasks/{task['id']}/complete"
    nan = b'{"lease_token": "%s", "metrics": {"val_accuracy": NaN}}' % task["lease_token"].encode()
    assert (
        client.post(url, content=nan, headers={"content-type": "application/json"}).status_code
        == 422
    )
    assert (
        client.post(
            url, json={"lease_token": task["lease_token"], "metrics": {"a": "high"}}
        ).status_code
        == 422
    )
    assert (
        client.post("/v1/tasks/claim", json={"worker_id": worker, "wait_seconds": 61}).status_code
        == 422
    )
    assert client.post("/v1/tasks/claim", json={"worker_id": 2**40}).status_code == 422
    assert client.get("/v1/experiments/0").status_code == 422
    assert client.get("/v1/experiments", params={"limit": 10**6}).status_code == 422
    assert client.get("/v1/experiments/1/tasks", params={"state": "weird"}).status_code == 422


def test_short_tokens_are_refused() -> None:
    with pytest.raises(ValueError, match="at least 16 characters"):
        Settings(admin_token="x")
    with pytest.raises(ValueError, match="at least 16 characters"):
        Settings(worker_token=f"{WORKER},short")


def test_a_bad_token_list_fails_in_one_line_that_never_shows_a_token(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from server.cli import main

    real = "a-real-token-that-must-stay-secret"
    monkeypatch.setenv("MORPHML_ADMIN_TOKEN", f"{real},changeme")
    with pytest.raises(SystemExit) as stopped:
        main(["migrate", "--database-url", "sqlite://"])
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "MORPHML_ADMIN_TOKEN" in err and "placeholder" in err
    assert real not in err and "Traceback" not in err


def _registered(secured: TestClient, name: str) -> tuple[int, dict[str, str]]:
    """A worker id and the headers its calls carry: the fleet token and its own credential."""
    response = secured.post("/v1/workers", json=worker_body(name=name), headers=_auth(WORKER))
    assert response.status_code == 201, response.text
    worker = response.json()
    headers = {**_auth(WORKER), WORKER_CREDENTIAL_HEADER: worker["credential"]}
    return int(worker["id"]), headers


def _claim_as(secured: TestClient, worker_id: int, headers: dict[str, str]) -> Any:
    body = {"worker_id": worker_id, "wait_seconds": 0}
    return secured.post("/v1/tasks/claim", json=body, headers=headers)


def test_a_fleet_token_alone_cannot_claim(secured: TestClient) -> None:
    secured.post("/v1/experiments", json=spec(), headers=_auth(ADMIN))
    worker_id, _ = _registered(secured, "a")
    response = _claim_as(secured, worker_id, _auth(WORKER))
    assert response.status_code == 401 and WORKER_CREDENTIAL_HEADER in response.json()["detail"]
    forged = {**_auth(WORKER), WORKER_CREDENTIAL_HEADER: f"{worker_id}.{'0' * 32}"}
    assert _claim_as(secured, worker_id, forged).status_code == 401


def test_a_worker_cannot_claim_or_report_as_another(secured: TestClient) -> None:
    secured.post("/v1/experiments", json=spec(), headers=_auth(ADMIN))
    victim, victim_headers = _registered(secured, "victim")
    thief, thief_headers = _registered(secured, "thief")
    assert _claim_as(secured, victim, thief_headers).status_code == 403
    task = _claim_as(secured, victim, victim_headers).json()
    url = f"/v1/tasks/{task['id']}"
    forged = {"lease_token": task["lease_token"], "metrics": {"val_accuracy": 0.99}}
    assert secured.post(f"{url}/complete", json=forged, headers=thief_headers).status_code == 403
    failing = {"lease_token": task["lease_token"], "retryable": False}
    assert secured.post(f"{url}/fail", json=failing, headers=thief_headers).status_code == 403
    beat = {"lease_token": task["lease_token"]}
    assert secured.post(f"{url}/heartbeat", json=beat, headers=thief_headers).status_code == 403
    own = secured.post(f"{url}/complete", json=forged, headers=victim_headers)
    assert own.status_code == 200 and own.json()["worker_id"] == victim
    assert thief != victim
