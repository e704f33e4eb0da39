"""ServerApi: retries with backoff on network errors and 5xx, lease errors, deadlines."""

from __future__ import annotations

import json
import logging
import random
import threading
import time

import httpx
import pytest
import respx

from morphml.wire import ClaimRequest, HeartbeatRequest, WorkerCreate
from tests.worker.fakes import heartbeat_answer, make_task, worker_answer
from worker.http import ApiError, Backoff, LeaseLost, MalformedAnswer, ServerApi, Unreachable

REGISTER = WorkerCreate(name="w")
CLAIM = ClaimRequest(worker_id=1, wait_seconds=0)
BEAT = HeartbeatRequest(lease_token="t")


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
        side_effect=[
            httpx.Response(503),
            httpx.Response(502),
            httpx.Response(201, json=worker_answer(4)),
        ]
    )
    with httpx.Client(base_url="http://server") as client:
        assert fast_api(client).register(REGISTER, stop=threading.Event()) == 4
    assert route.call_count == 3


@respx.mock(base_url="http://server")
def test_connection_errors_are_retried(respx_mock: respx.MockRouter) -> None:
    route = respx_mock.post("/v1/tasks/claim").mock(
        side_effect=[httpx.ConnectError("refused"), httpx.ReadTimeout("slow"), httpx.Response(204)]
    )
    with httpx.Client(base_url="http://server") as client:
        assert fast_api(client).claim(CLAIM, stop=threading.Event()) is None
    assert route.call_count == 3


@pytest.mark.parametrize("status", [404, 409])
@respx.mock(base_url="http://server")
def test_404_and_409_mean_the_lease_is_gone(respx_mock: respx.MockRouter, status: int) -> None:
    respx_mock.post("/v1/tasks/3/heartbeat").mock(
        return_value=httpx.Response(status, json={"detail": "stale lease token"})
    )
    with httpx.Client(base_url="http://server") as client, pytest.raises(LeaseLost, match="stale"):
        fast_api(client).heartbeat(3, BEAT, deadline=time.monotonic() + 5)


@respx.mock(base_url="http://server")
def test_other_4xx_is_not_retried(respx_mock: respx.MockRouter) -> None:
    route = respx_mock.post("/v1/workers").mock(
        return_value=httpx.Response(401, json={"detail": "bad token"})
    )
    with httpx.Client(base_url="http://server") as client, pytest.raises(ApiError, match="401"):
        fast_api(client).register(REGISTER, stop=threading.Event())
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
        api.register(REGISTER, stop=stop)
    assert time.monotonic() - started < 2.0


@respx.mock(base_url="http://server")
def test_answers_are_parsed_into_wire_models(respx_mock: respx.MockRouter) -> None:
    claim = respx_mock.post("/v1/tasks/claim").mock(
        return_value=httpx.Response(200, json=make_task(5, timeout_seconds=9))
    )
    respx_mock.post("/v1/tasks/5/heartbeat").mock(
        return_value=httpx.Response(200, json=heartbeat_answer("stop", "pruned"))
    )
    with httpx.Client(base_url="http://server") as client:
        task = fast_api(client).claim(CLAIM, stop=threading.Event())
        assert task is not None and task.id == 5 and task.evaluator.kind == "python"
        answer = fast_api(client).heartbeat(task.id, BEAT, deadline=time.monotonic() + 5)
    assert answer.action == "stop" and answer.reason == "pruned"
    assert json.loads(claim.calls[0].request.content) == {
        "worker_id": 1, "wait_seconds": 0.0, "free": None, "labels": None
    }  # fmt: skip


@pytest.mark.parametrize(
    ("path", "answer"),
    [
        ("/v1/tasks/claim", {**make_task(1), "id": "../../../victim"}),
        ("/v1/tasks/claim", {**make_task(1), "lease_token": None}),
        ("/v1/workers", {**worker_answer(1), "id": "seven"}),
        ("/v1/tasks/claim", "not an object"),
    ],
)
@respx.mock(base_url="http://server")
def test_an_answer_off_the_contract_is_malformed(
    respx_mock: respx.MockRouter, path: str, answer: object
) -> None:
    respx_mock.post(path).mock(return_value=httpx.Response(200, json=answer))
    with httpx.Client(base_url="http://server") as client, pytest.raises(MalformedAnswer):
        api = fast_api(client)
        if path == "/v1/workers":
            api.register(REGISTER, stop=threading.Event())
        else:
            api.claim(CLAIM, stop=threading.Event())


@respx.mock(base_url="http://server")
def test_an_answer_that_is_not_json_is_malformed(respx_mock: respx.MockRouter) -> None:
    respx_mock.post("/v1/tasks/3/heartbeat").mock(return_value=httpx.Response(200, text="<html>"))
    with httpx.Client(base_url="http://server") as client:
        with pytest.raises(MalformedAnswer, match="not JSON"):
            fast_api(client).heartbeat(3, BEAT, deadline=time.monotonic() + 5)


def test_an_unknown_report_is_refused_before_any_request() -> None:
    with respx.mock(base_url="http://server", assert_all_called=False) as router:
        anything = router.route().mock(return_value=httpx.Response(200, json={}))
        api = fast_api(httpx.Client(base_url="http://server"))
        with pytest.raises(ValueError, match="unknown report"):
            api.report(1, "../../workers", {}, deadline=time.monotonic() + 5)  # type: ignore[arg-type]
    assert not anything.called


@respx.mock(base_url="http://server")
def test_a_url_where_nothing_answers_is_named_with_the_flag_that_sets_it(
    respx_mock: respx.MockRouter, caplog: pytest.LogCaptureFixture
) -> None:
    refused = httpx.ConnectError("[Errno 111] Connection refused")
    respx_mock.post("/v1/workers").mock(
        side_effect=[refused] * 4 + [httpx.Response(201, json=worker_answer(4))]
    )
    with caplog.at_level(logging.INFO, logger="morphml.worker"):
        with httpx.Client(base_url="http://server") as client:
            assert fast_api(client).register(REGISTER, stop=threading.Event()) == 4  # retried on
    (hint,) = [r for r in caplog.records if "nothing answers" in r.getMessage()]
    assert hint.levelno == logging.ERROR
    message = hint.getMessage()
    assert "http://server" in message and "Connection refused" in message
    assert "--server" in message and "MORPHML_WORKER_SERVER" in message


@respx.mock(base_url="http://server")
def test_a_server_that_answered_before_is_not_called_a_wrong_url(
    respx_mock: respx.MockRouter, caplog: pytest.LogCaptureFixture
) -> None:
    respx_mock.post("/v1/workers").mock(return_value=httpx.Response(201, json=worker_answer(4)))
    refused = httpx.ConnectError("[Errno 111] Connection refused")
    respx_mock.post("/v1/tasks/claim").mock(side_effect=[refused] * 4 + [httpx.Response(204)])
    with caplog.at_level(logging.INFO, logger="morphml.worker"):
        with httpx.Client(base_url="http://server") as client:
            api = fast_api(client)
            api.register(REGISTER, stop=threading.Event())
            assert api.claim(CLAIM, stop=threading.Event()) is None
    assert "nothing answers" not in caplog.text and "has stopped answering" in caplog.text
