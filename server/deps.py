"""`Annotated` dependency aliases shared by the routers."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.engine import Engine

from morphml.wire import WORKER_CREDENTIAL_HEADER
from server.artifacts import ArtifactStore
from server.auth import Role, credential_worker, require_admin, role_of
from server.config import Settings
from server.db import Database
from server.metrics import ServerMetrics

_bearer = HTTPBearer(auto_error=False, description="MORPHML_ADMIN_TOKEN or MORPHML_WORKER_TOKEN")


# Dependencies are `async def` although nothing here awaits: FastAPI runs a plain `def`
# dependency in its thread pool, a thread hop per dependency per request.


async def get_app_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


async def get_metrics(request: Request) -> ServerMetrics:
    metrics: ServerMetrics = request.app.state.metrics
    return metrics


async def get_database(request: Request) -> Database:
    database: Database = request.app.state.database
    return database


async def get_artifact_store(request: Request) -> ArtifactStore:
    store: ArtifactStore = request.app.state.artifacts
    return store


SettingsDep = Annotated[Settings, Depends(get_app_settings)]
EngineDep = Annotated[Engine, Depends(get_engine)]
MetricsDep = Annotated[ServerMetrics, Depends(get_metrics)]
DatabaseDep = Annotated[Database, Depends(get_database)]
ArtifactStoreDep = Annotated[ArtifactStore, Depends(get_artifact_store)]
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


async def worker_role(settings: SettingsDep, credentials: Credentials) -> Role:
    """Admin or worker token."""
    return role_of(settings, credentials)


async def admin_role(settings: SettingsDep, credentials: Credentials) -> Role:
    role = role_of(settings, credentials)
    require_admin(role)
    return role


async def caller_worker(
    settings: SettingsDep,
    role: Annotated[Role, Depends(worker_role)],
    credential: Annotated[str | None, Header(alias=WORKER_CREDENTIAL_HEADER)] = None,
) -> int | None:
    """The registered worker a worker-token call comes from (its credential from registration);
    None for an admin, or with auth off. A fleet token alone no longer lets its holder act as
    any worker: 401 without a valid credential."""
    if not settings.auth_enabled or role == Role.ADMIN:
        return None
    worker_id = credential_worker(settings, credential)
    if worker_id is None:
        raise HTTPException(
            status_code=status.HTTP_401_UNAUTHORIZED,
            detail=f"this call needs the worker's credential from registration "
            f"({WORKER_CREDENTIAL_HEADER})",
        )
    return worker_id


WorkerAuth = Depends(worker_role)
RoleDep = Annotated[Role, Depends(worker_role)]
CallerWorker = Annotated[int | None, Depends(caller_worker)]
AdminAuth = Depends(admin_role)
