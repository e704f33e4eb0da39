"""`create_app()`: the FastAPI app, its lifespan (migrations, reaper, LISTEN, the stop signal),
error mapping and the offline API docs."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

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
from server.api.main import api_router
from server.config import Settings, get_settings
from server.db import Database, make_engine
from server.errors import ConflictError, InvalidSpecError, NotFoundError
from server.limits import BodySizeLimit
from server.metrics import RequestLatency, ServerMetrics
from server.migrations import upgrade_to_head
from server.reaper import reap_until
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
    app.state.database = Database(engine, settings.database_threads)
    app.state.metrics = ServerMetrics(engine)
    app.include_router(api_router)
    app.include_router(docs.router)
    app.mount(docs.ASSETS_URL, docs.assets(), name="docs-assets")
    _add_error_handlers(app)
    app.add_middleware(RequestLatency, metrics=app.state.metrics)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    return app


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    engine: Engine = app.state.engine
    if settings.run_migrations_on_start:
        await run_in_threadpool(upgrade_to_head, engine)
    waker = waker_for(engine)
    waker.bind(asyncio.get_running_loop())
    stop = asyncio.Event()
    reaper = asyncio.create_task(reap_until(stop, engine, settings, app.state.metrics))
    background: list[asyncio.Task[None]] = []
    if engine.dialect.name == "postgresql":
        background.append(asyncio.create_task(listen_forever(_libpq_conninfo(engine), waker)))
    try:
        yield
    finally:
        stop.set()
        await reaper
        for task in background:
            task.cancel()
        for task in background:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        app.state.database.close()
        engine.dispose()


def _libpq_conninfo(engine: Engine) -> str:
    url = make_url(str(engine.url.render_as_string(hide_password=False))).set(
        drivername="postgresql"
    )
    return url.render_as_string(hide_password=False)


def _add_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation_error)
    statuses: dict[type[Exception], int] = {
        NotFoundError: 404,
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
