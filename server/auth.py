"""Bearer-token roles: `admin` may do everything; `worker` may register, claim, heartbeat,
complete and fail.

With no token configured at all, auth is off; the CLI then only binds to loopback.
"""

from __future__ import annotations

import secrets
from enum import StrEnum

from fastapi import HTTPException, status
from fastapi.security import HTTPAuthorizationCredentials

from server.config import Settings


class Role(StrEnum):
    ADMIN = "admin"
    WORKER = "worker"


def _matches(token: str, allowed: frozenset[str]) -> bool:
    # compare_digest against every token: timing does not reveal which prefix matched.
    return any(secrets.compare_digest(token.encode(), candidate.encode()) for candidate in allowed)


def role_of(settings: Settings, credentials: HTTPAuthorizationCredentials | None) -> Role:
    """The caller's role, or 401 when auth is on and the token is missing or unknown."""
    if not settings.auth_enabled:
        return Role.ADMIN
    token = credentials.credentials if credentials is not None else ""
    if token and _matches(token, settings.admin_tokens):
        return Role.ADMIN
    if token and _matches(token, settings.worker_tokens):
        return Role.WORKER
    raise HTTPException(
        status_code=status.HTTP_401_UNAUTHORIZED,
        detail="missing or invalid bearer token",
        headers={"WWW-Authenticate": "Bearer"},
    )


def require_admin(role: Role) -> None:
    if role != Role.ADMIN:
        raise HTTPException(
            status_code=status.HTTP_403_FORBIDDEN, detail="this route needs an admin token"
        )
