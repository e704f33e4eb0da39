"""ServerApi: retries with backoff on network errors and 5xx, lease errors, deadlines."""

from __future__ import annotations

import random
import threading
import time

import httpx
import pytest
import respx

from worker.http import ApiError, Backoff, LeaseLost, ServerApi, Unreachable


def fast_api(client: httpx.Client) -> ServerApi:
    return ServerApi(client, backoff=Backoff(base=0.01, cap=0.02))


def test_backoff_grows_exponentially_with_bounded_jitter() -> None:
    backoff = Backoff(base=1.0, cap=8.0, rng=random.Random(0))
    for attempt, step in [(0, 1.0), (1, 2.0), (2, 4.0), (3, 8.0), (10, 8.0)]:
        delays = [backoff.delay(attempt) for _ in range(50)]
        assert all(step / 2 <= d <= step for d in delays)
        assert len(set(delays)) > 1  # jittered, so a fleet does not retry in lockstep


@respx.mock(base_url="http://server")
def test_5xx_is_retried_until_it_succeeds(respx_mock: respx.MockRouter) -> None:
    route = respx_mock.post("/v1/workers").mock(
        side_effect=[httpx.Response(503), httpx.Response(502), httpx.Response(201, json={"id": 4})]
    )
    with httpx.Client(base_url="http://server") as client:
        assert fast_api(client).register({}, stop=threading.Event()) == 4
    assert route.call_count == 3


@respx.mock(base_url="http://server")
def test_connection_errors_are_retried(respx_mock: respx.MockRouter) -> None:
    route = respx_mock.post("/v1/tasks/claim").mock(
        side_effect=[httpx.ConnectError("refused"), httpx.ReadTimeout("slow"), httpx.Response(204)]
    )
    with httpx.Client(base_url="http://server") as client:
        assert fast_api(client).claim({"wait_seconds": 0}, stop=threading.Event()) is None
    assert route.call_count == 3


@pytest.mark.parametrize("status", [404, 409])
@respx.mock(base_url="http://server")
def test_404_and_409_mean_the_lease_is_gone(respx_mock: respx.MockRouter, status: int) -> None:
    respx_mock.post("/v1/tasks/3/heartbeat").mock(
        return_value=httpx.Response(status, json={"detail": "stale lease token"})
    )
    with httpx.Client(base_url="http://server") as client, pytest.raises(LeaseLost, match="stale"):
        fast_api(client).heartbeat(3, {}, deadline=time.monotonic() + 5)


@respx.mock(base_url="http://server")
def test_other_4xx_is_not_retried(respx_mock: respx.MockRouter) -> None:
    route = respx_mock.post("/v1/workers").mock(
        return_value=httpx.Response(401, json={"detail": "bad token"})
    )
    with httpx.Client(base_url="http://server") as client, pytest.raises(ApiError, match="401"):
        fast_api(client).register({}, stop=threading.Event())
    assert route.call_count == 1


@respx.mock(base_url="http://server")
def test_retries_stop_at_the_deadline(respx_mock: respx.MockRouter) -> None:
    respx_mock.post("/v1/tasks/3/complete").mock(side_effect=httpx.ConnectError("refused"))
    api = ServerApi(httpx.Client(base_url="http://server"), backoff=Backoff(base=0.05, cap=0.1))
    started = time.monotonic()
    with pytest.raises(Unreachable, match="ConnectError"):
        api.report(3, "complete", {}, deadline=started + 0.3)
    assert time.monotonic() - started < 1.0


@respx.mock(base_url="http://server")
def test_a_stop_event_cuts_the_backoff_sleep(respx_mock: respx.MockRouter) -> None:
    respx_mock.post("/v1/workers").mock(return_value=httpx.Response(500))
    api = ServerApi(httpx.Client(base_url="http://server"), backoff=Backoff(base=30, cap=30))
    stop = threading.Event()
    threading.Timer(0.2, stop.set).start()
    started = time.monotonic()
    with pytest.raises(Unreachable, match="interrupted"):
        api.register({}, stop=stop)
    assert time.monotonic() - started < 2.0
