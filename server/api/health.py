"""Liveness, readiness (the database answers) and Prometheus metrics."""

from __future__ import annotations

import sqlalchemy as sa
from fastapi import APIRouter, HTTPException, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy.exc import SQLAlchemyError

from server.auth import require_admin, role_of
from server.deps import Credentials, EngineDep, MetricsDep, SettingsDep

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "The database does not answer"}})
def readyz(engine: EngineDep) -> dict[str, str]:
    try:
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
    except SQLAlchemyError as exc:
        raise HTTPException(
            status_code=503, detail=f"database unavailable: {type(exc).__name__}"
        ) from None
    return {"status": "ready"}


@router.get("/metrics", response_class=Response, responses={200: {"content": {"text/plain": {}}}})
async def metrics(metrics: MetricsDep, settings: SettingsDep, credentials: Credentials) -> Response:
    _check_metrics_access(settings.metrics_public, settings, credentials)
    body = await run_in_threadpool(generate_latest, metrics.registry)
    return Response(content=body, media_type=CONTENT_TYPE_LATEST)


def _check_metrics_access(
    public: bool, settings: SettingsDep, credentials: HTTPAuthorizationCredentials | None
) -> None:
    if not public:
        require_admin(role_of(settings, credentials))
