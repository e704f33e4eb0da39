"""Liveness, readiness (the database answers) and Prometheus metrics."""

from __future__ import annotations

import sqlalchemy as sa
from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.security import HTTPAuthorizationCredentials
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from server.api.responses import ADMIN_ONLY, UNAUTHORIZED, error, errors
from server.auth import require_admin, role_of
from server.db import read
from server.deps import Credentials, DatabaseDep, MetricsDep, SettingsDep
from server.draining import is_stopping

router = APIRouter(tags=["health"])


@router.get(
    "/healthz",
    summary="Liveness",
    description="200 while the process answers HTTP; touches nothing else. Public.",
    response_description='`{"status": "ok"}`: the process is alive.',
)
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Readiness",
    description="200 when the database answers a query, 503 when it does not (send no traffic "
    "here until it does). Public.",
    response_description='`{"status": "ready"}`: the database answers.',
    responses={
        503: error("The database does not answer", "database unavailable: OperationalError")
    },
)
async def readyz(request: Request, database: DatabaseDep) -> dict[str, str]:
    if is_stopping(request.scope):  # leave the load balancer's pool before the port closes
        raise HTTPException(status_code=503, detail="stopping")
    try:
        await database.run(_ping)
    except SQLAlchemyError as exc:
        raise HTTPException(
            status_code=503, detail=f"database unavailable: {type(exc).__name__}"
        ) from None
    return {"status": "ready"}


@router.get(
    "/metrics",
    response_class=Response,
    summary="Prometheus metrics",
    description="The server's metrics in the Prometheus text format: request latency by route, "
    "claims, outcomes, tasks by state. Public by default; with `MORPHML_METRICS_PUBLIC=false`, "
    "admin token only.",
    response_description="The metrics, in the Prometheus text exposition format.",
    responses={
        200: {"content": {"text/plain": {}}},
        401: error(UNAUTHORIZED + " Only when not public.", "missing or invalid bearer token"),
        403: error(ADMIN_ONLY + " Only when not public.", "this route needs an admin token"),
        **errors(),
    },
)
async def metrics(
    metrics: MetricsDep, settings: SettingsDep, credentials: Credentials, database: DatabaseDep
) -> Response:
    _check_metrics_access(settings.metrics_public, settings, credentials)
    body = await database.run(_scrape, metrics.registry)
    return Response(content=body, media_type=CONTENT_TYPE_LATEST)


def _ping(engine: Engine) -> None:
    with read(engine) as connection:
        connection.execute(sa.text("SELECT 1"))


def _scrape(_engine: Engine, registry: CollectorRegistry) -> bytes:
    """On the database executor: the task-state collector queries the database."""
    return generate_latest(registry)


def _check_metrics_access(
    public: bool, settings: SettingsDep, credentials: HTTPAuthorizationCredentials | None
) -> None:
    if not public:
        require_admin(role_of(settings, credentials))
