"""Bearer-token roles: `admin` may do everything; `worker` may register, claim, heartbeat,
complete and fail.

With no token configured at all, auth is off; the CLI then only binds to loopback.
"""

from __future__ import annotations

import hashlib
import hmac
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


def worker_credential(settings: Settings, worker_id: int) -> str:
    """`<worker id>.<HMAC of it>`: stateless, so any replica verifies it without a query. The
    key comes from the configured tokens: rotating every worker token retires the credentials
    (the agents register again)."""
    return f"{worker_id}.{_mac(settings, worker_id)}"


def credential_worker(settings: Settings, credential: str | None) -> int | None:
    """The worker id a credential was issued to, or None when it is missing or forged."""
    worker_id, _, mac = (credential or "").partition(".")
    if not worker_id.isascii() or not worker_id.isdigit() or len(worker_id) > 10:
        return None
    if not secrets.compare_digest(mac.encode(), _mac(settings, int(worker_id)).encode()):
        return None
    return int(worker_id)


def _mac(settings: Settings, worker_id: int) -> str:
    key = hashlib.sha256("\n".join(sorted(settings.worker_tokens | settings.admin_tokens)).encode())
    return hmac.new(key.digest(), str(worker_id).encode(), hashlib.sha256).hexdigest()[:32]
