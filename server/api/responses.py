"""What each error status of the API means, for the routes' `responses=` (OpenAPI only).

Every error body is `{"detail": "<one line>"}`, except a request that fails validation (422:
`detail` is then FastAPI's list of errors, each with the field's `loc`). The 422 response is the
one FastAPI declares itself (with `HTTPValidationError`); `extra()` only gives it a description,
through `openapi_extra`, because declaring 422 in `responses=` would replace FastAPI's schema.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class ErrorMessage(BaseModel):
    """The body of every error answer except a request that fails validation (422)."""

    detail: str = Field(description="What went wrong, in one line.")


Responses = dict[int | str, dict[str, Any]]
# A status's meaning on a route, and an example of its `detail`.
Meaning = tuple[str, str]

UNAUTHORIZED = (
    "No `Authorization: Bearer <token>` header, or a token the server does not know "
    "(only when the server has tokens configured; without any, auth is off)."
)
ADMIN_ONLY = "The token is a worker token; this route needs an admin token."
TOO_LARGE = "The request body is larger than the server's limit (`MORPHML_MAX_BODY_BYTES`)."
UNAVAILABLE = "The database does not answer (or is locked past its timeout); retry later."


def error(description: str, example: str) -> dict[str, Any]:
    """One error answer: its meaning and an example body."""
    content = {"application/json": {"example": {"detail": example}}}
    return {"model": ErrorMessage, "description": description, "content": content}


def errors(
    *,
    admin: bool = False,
    worker: bool = False,
    body: bool = False,
    database: bool = True,
    **by_status: Meaning,
) -> Responses:
    """The error answers of one route: 401 for routes behind a token (`admin` or `worker`),
    403 for admin routes, 413 for routes that take a body, 503 for routes that use the
    database, and others given as `status_404=(meaning, example detail)`."""
    responses: Responses = {}
    if admin or worker:
        responses[401] = error(UNAUTHORIZED, "missing or invalid bearer token")
    if admin:
        responses[403] = error(ADMIN_ONLY, "this route needs an admin token")
    for key, (description, example) in by_status.items():
        responses[int(key.removeprefix("status_"))] = error(description, example)
    if body:
        responses[413] = error(TOO_LARGE, "request body larger than 1048576 bytes")
    if database:
        responses[503] = error(UNAVAILABLE, "database unavailable, retry later")
    return dict(sorted(responses.items(), key=lambda item: str(item[0])))


def extra(*, invalid: str, examples: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """`openapi_extra` for a route: a description of FastAPI's own 422 answer (`invalid`: what
    makes this route's request invalid) and the request body's named examples."""
    extra: dict[str, Any] = {"responses": {"422": {"description": invalid}}}
    if examples:
        extra["requestBody"] = {"content": {"application/json": {"examples": examples}}}
    return extra
