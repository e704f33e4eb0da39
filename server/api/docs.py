"""The interactive API docs, served without internet: Swagger UI at `/docs`, ReDoc at `/redoc`.

FastAPI's own pages load their JavaScript and CSS from a CDN, which a GPU cluster often cannot
reach: the page stays blank. These pages load the same assets from the app itself, under
`/docs/assets/`: the files of the `fastapi-offline` wheel (Swagger UI 5, Apache-2.0; ReDoc 2,
MIT; the wheel itself MIT). Like `/openapi.json` they are public: they show the contract, not
data, and every call made from them carries the token entered under "Authorize".
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

DOCS_URL = "/docs"
REDOC_URL = "/redoc"
OAUTH2_REDIRECT_URL = "/docs/oauth2-redirect"
ASSETS_URL = "/docs/assets"

API_DESCRIPTION = """\
The control plane of MorphML's distributed neural architecture search. An admin submits an
**experiment** (a search space, an optimizer, objectives, an evaluator and a budget); the server
asks the optimizer for candidate architectures and queues each as a **task**. `morphml-worker`
agents register, long-poll `POST /v1/tasks/claim` (or `/claim-batch`, a task per free slot),
train the candidate under a **lease** (kept alive by heartbeats) and report the metrics back
(`/complete`, or `/complete-and-claim`, which also hands over the slot's next task); results steer
the next candidates.

**Authentication.** `Authorization: Bearer <token>`, with the tokens the server was started with:
`MORPHML_ADMIN_TOKEN` may call everything, `MORPHML_WORKER_TOKEN` only the worker routes
(register, claim, claim-batch, heartbeat, complete, complete-and-claim, fail). Each may be a
comma-separated list. A server started without any token has authentication off and listens on
loopback only. `/healthz`,
`/readyz`, these docs and `/openapi.json` are public; `/metrics` is public unless
`MORPHML_METRICS_PUBLIC=false`, then admin only.

**Errors.** Every error answer is `{"detail": "<one line>"}`, except a request that fails
validation: a 422 whose `detail` lists each problem with its location (`loc`). 401: no token or
an unknown one; 403: a worker token on an admin route; 404: no such experiment, task or worker;
409: the state forbids it (a stale lease token, a finished task, pausing a finished experiment);
413: body over `MORPHML_MAX_BODY_BYTES`; 422: invalid input; 503: the database does not answer,
retry later.

Times are ISO 8601 in UTC (the database's clock); ids are integers.
"""

TAGS = [
    {"name": "health", "description": "Liveness, readiness and Prometheus metrics."},
    {
        "name": "experiments",
        "description": "Admin: submit searches, follow them, pause, resume or cancel them, and "
        "read their tasks, best result and Pareto front.",
    },
    {
        "name": "workers",
        "description": "Worker agents register themselves (worker token); admins list them.",
    },
    {
        "name": "tasks",
        "description": "The worker protocol (worker token): claim a task (or a batch, one per "
        "free slot) by long-poll, keep its lease with heartbeats, then complete or fail it; a "
        "complete may claim the slot's next task in the same request. Every call after the "
        "claim carries the claim's `lease_token`; a stale one gets 409 and changes nothing.",
    },
    {
        "name": "artifacts",
        "description": "Files tasks produce (final weights, checkpoints, evaluator files), "
        "streamed through the server into its artifact store: workers upload under their "
        "task's lease; admins list, download and delete; a retried task downloads its latest "
        "checkpoint under its new lease.",
    },
]

router = APIRouter(include_in_schema=False, tags=["docs"])  # a tag: see `operation_id`


def assets() -> StaticFiles:
    """The docs' JavaScript, CSS and favicon, for `app.mount(ASSETS_URL, ...)`."""
    return StaticFiles(packages=[("fastapi_offline", "static")])


def _base(request: Request) -> str:
    """The app's prefix behind a proxy (`root_path`), as FastAPI's own docs pages use it."""
    root: str = request.scope.get("root_path", "")
    return root.rstrip("/")


def _openapi_url(request: Request) -> str:
    return f"{_base(request)}{request.app.openapi_url}"


@router.get(DOCS_URL)
async def swagger_ui(request: Request) -> HTMLResponse:
    base = _base(request)
    return get_swagger_ui_html(
        openapi_url=_openapi_url(request),
        title=f"{request.app.title} - Swagger UI",
        swagger_js_url=f"{base}{ASSETS_URL}/swagger-ui-bundle.js",
        swagger_css_url=f"{base}{ASSETS_URL}/swagger-ui.css",
        swagger_favicon_url=f"{base}{ASSETS_URL}/favicon.png",
        oauth2_redirect_url=f"{base}{OAUTH2_REDIRECT_URL}",
        # No badge fetched from validator.swagger.io: nothing on the page leaves the server.
        swagger_ui_parameters={"validatorUrl": None},
    )


@router.get(OAUTH2_REDIRECT_URL)
async def swagger_ui_redirect() -> HTMLResponse:
    return get_swagger_ui_oauth2_redirect_html()


@router.get(REDOC_URL)
async def redoc(request: Request) -> HTMLResponse:
    base = _base(request)
    return get_redoc_html(
        openapi_url=_openapi_url(request),
        title=f"{request.app.title} - ReDoc",
        redoc_js_url=f"{base}{ASSETS_URL}/redoc.standalone.js",
        redoc_favicon_url=f"{base}{ASSETS_URL}/favicon.png",
        with_google_fonts=False,
    )
