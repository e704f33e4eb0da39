"""`Annotated` dependency aliases shared by the routers."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.engine import Engine

from server.auth import Role, require_admin, role_of
from server.config import Settings
from server.metrics import ServerMetrics

_bearer = HTTPBearer(auto_error=False, description="MORPHML_ADMIN_TOKEN or MORPHML_WORKER_TOKEN")


def get_app_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


def get_metrics(request: Request) -> ServerMetrics:
    metrics: ServerMetrics = request.app.state.metrics
    return metrics


SettingsDep = Annotated[Settings, Depends(get_app_settings)]
EngineDep = Annotated[Engine, Depends(get_engine)]
MetricsDep = Annotated[ServerMetrics, Depends(get_metrics)]
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


def worker_role(settings: SettingsDep, credentials: Credentials) -> Role:
    """Admin or worker token."""
    return role_of(settings, credentials)


def admin_role(settings: SettingsDep, credentials: Credentials) -> Role:
    role = role_of(settings, credentials)
    require_admin(role)
    return role


WorkerAuth = Depends(worker_role)
AdminAuth = Depends(admin_role)
