"""`create_app()`: the FastAPI app, its lifespan (migrations, reaper, LISTEN, the stop signal),
error mapping and the offline API docs."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from types import FrameType
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import OperationalError

from morphml.errors import MorphMLError
from server.api import docs
from server.api.artifacts import UPLOAD_PATH
from server.api.main import api_router
from server.artifacts import cleanup, open_store
from server.config import Settings, get_settings
from server.db import Database, make_engine
from server.draining import CloseConnectionsWhileStopping
from server.errors import ConflictError, ForbiddenError, InvalidSpecError, NotFoundError
from server.limits import BodySizeLimit
from server.metrics import RequestLatency, ServerMetrics
from server.migrations import upgrade_to_head
from server.reaper import reap_until
from server.ui import router as dashboard_router
from server.wakeup import listen_forever, waker_for

log = logging.getLogger("morphml.server")


def operation_id(route: APIRoute) -> str:
    """Stable `{tag}-{name}` operation ids, so generated clients keep their method names."""
    return f"{route.tags[0]}-{route.name}"


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    engine = make_engine(settings.database_url, busy_timeout_ms=settings.sqlite_busy_timeout_ms)
    app = FastAPI(
        title="MorphML control plane",
        version="1",
        summary="Experiments, tasks and leases for distributed neural architecture search.",
        description=docs.API_DESCRIPTION,
        lifespan=_lifespan,
        generate_unique_id_function=operation_id,
        openapi_tags=docs.TAGS,
        # Served by `server.api.docs` from packaged assets instead of a CDN.
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.database = Database(engine, settings.database_threads, settings.refill_threads)
    app.state.metrics = ServerMetrics(engine)
    app.state.artifacts = open_store(settings)
    app.include_router(api_router)
    app.include_router(docs.router)
    app.include_router(dashboard_router)  # the web dashboard at /ui
    app.mount(docs.ASSETS_URL, docs.assets(), name="docs-assets")
    _add_error_handlers(app)
    app.add_middleware(RequestLatency, metrics=app.state.metrics)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes, streamed=UPLOAD_PATH)
    app.add_middleware(CloseConnectionsWhileStopping)
    return app


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    engine: Engine = app.state.engine
    if settings.run_migrations_on_start:
        await run_in_threadpool(upgrade_to_head, engine)
    loop = asyncio.get_running_loop()
    waker = waker_for(engine)
    waker.bind(loop)
    # Resolved when the server starts to stop; open claim long-polls then answer 204 at once.
    stopping: asyncio.Future[None] = loop.create_future()
    app.state.stopping = stopping
    restore_signals = _resolve_on_stop_signals(loop, stopping, settings.shutdown_drain_seconds)
    stop = asyncio.Event()
    reaper = asyncio.create_task(
        reap_until(stop, engine, settings, app.state.metrics, app.state.artifacts)
    )
    background: list[asyncio.Task[None]] = []
    if engine.dialect.name == "postgresql":
        background.append(asyncio.create_task(listen_forever(_libpq_conninfo(engine), waker)))
    try:
        yield
    finally:
        restore_signals()
        _resolve(stopping)
        stop.set()
        await reaper
        await cleanup.wait_for_background()
        for task in background:
            task.cancel()
        for task in background:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        app.state.database.close()
        engine.dispose()


_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_Handler = Callable[[int, FrameType | None], Any]


def _resolve_on_stop_signals(
    loop: asyncio.AbstractEventLoop, stopping: asyncio.Future[None], drain_seconds: float = 0.0
) -> Callable[[], None]:
    """Resolve `stopping` on SIGINT/SIGTERM, before the server's own handler runs; returns the
    undo. Why: uvicorn's graceful shutdown waits for open requests before the lifespan ends, so
    only a signal can tell a long-poll to answer; otherwise each one holds the shutdown until
    `timeout_graceful_shutdown` cancels it (an ERROR and a traceback per claim).

    Only on the main thread, in front of a Python-level handler already there (uvicorn's
    `Server.handle_exit`); elsewhere (a test client, a server on a thread) nothing changes.
    uvicorn is handed SIGTERM as SIGINT: it stops the same way, but afterwards re-raises the
    signal it was given, and a re-raised SIGTERM kills the process (status -15) where SIGINT
    ends it with 0, as Ctrl-C does. So `morphml-server` stopped by SIGTERM exits 0; a second
    signal during the shutdown forces it, as a second Ctrl-C does.

    With `drain_seconds`, the server's handler runs that much later: meanwhile /readyz answers
    503 (a load balancer takes the replica out) and requests are still served, each answer
    closing its connection so that the client's next request goes elsewhere. A second signal
    during the drain stops at once."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    chained: dict[int, _Handler] = {}
    for stop_signal in _STOP_SIGNALS:
        handler = signal.getsignal(stop_signal)
        if callable(handler):
            chained[stop_signal] = handler

    def on_signal(signum: int, frame: FrameType | None) -> None:
        draining = drain_seconds > 0 and not stopping.done()
        loop.call_soon_threadsafe(_resolve, stopping)
        forward = chained[signum]
        signum = _as_uvicorn_expects(signum, forward)
        if draining:  # on the loop: a signal handler must not take the logging lock
            loop.call_soon_threadsafe(_drain_then, loop, drain_seconds, forward, signum)
        else:
            forward(signum, frame)

    for chained_signal in chained:
        signal.signal(chained_signal, on_signal)

    def restore() -> None:
        for chained_signal, previous in chained.items():
            if signal.getsignal(chained_signal) is on_signal:
                signal.signal(chained_signal, previous)

    return restore


def _drain_then(
    loop: asyncio.AbstractEventLoop, seconds: float, forward: _Handler, signum: int
) -> None:
    log.info("stopping: draining for %.1f s (readiness fails, requests still served)", seconds)
    loop.call_later(seconds, forward, signum, None)


def _as_uvicorn_expects(signum: int, forward: _Handler) -> int:
    """SIGTERM becomes SIGINT for uvicorn's handler (see above); any other handler gets it as
    it came."""
    if signum == signal.SIGTERM and isinstance(getattr(forward, "__self__", None), uvicorn.Server):
        return signal.SIGINT
    return signum


def _resolve(stopping: asyncio.Future[None]) -> None:
    if not stopping.done():
        stopping.set_result(None)


def _libpq_conninfo(engine: Engine) -> str:
    url = make_url(str(engine.url.render_as_string(hide_password=False))).set(
        drivername="postgresql"
    )
    return url.render_as_string(hide_password=False)


def _add_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation_error)
    statuses: dict[type[Exception], int] = {
        NotFoundError: 404,
        ForbiddenError: 403,
        ConflictError: 409,
        InvalidSpecError: 422,
        MorphMLError: 422,
        OperationalError: 503,
    }
    for error, status_code in statuses.items():
        app.add_exception_handler(error, _handler(status_code))


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    """FastAPI's 422, minus echoed inputs JSON cannot carry (NaN would turn it into a 500)."""
    assert isinstance(exc, RequestValidationError)
    errors = [_json_safe_error(error) for error in exc.errors()]
    return JSONResponse({"detail": jsonable_encoder(errors)}, status_code=422)


def _json_safe_error(error: dict[str, Any]) -> dict[str, Any]:
    """The error without an input JSON cannot carry (NaN, a lone surrogate); a location part
    that is such a string (a hostile key) is escaped."""
    safe: dict[str, Any] = {key: error[key] for key in ("type", "msg") if key in error}
    safe["loc"] = [_encodable(part) for part in error.get("loc", ())]
    try:
        text = json.dumps(jsonable_encoder(error.get("input")), allow_nan=False, ensure_ascii=False)
        text.encode("utf-8")
    except (TypeError, ValueError):  # UnicodeEncodeError is a ValueError
        return safe
    return {**safe, "input": error.get("input")}


def _encodable(part: Any) -> Any:
    if isinstance(part, str):
        return part.encode("utf-8", "backslashreplace").decode("utf-8")
    return part


def _handler(status_code: int) -> Callable[[Request, Exception], Awaitable[JSONResponse]]:
    async def handle(_request: Request, exc: Exception) -> JSONResponse:
        if status_code == 503:
            log.warning("database unavailable: %s", exc)
            return JSONResponse({"detail": "database unavailable, retry later"}, status_code=503)
        return JSONResponse({"detail": str(exc)}, status_code=status_code)

    return handle
