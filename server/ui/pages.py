"""The dashboard's pages at `/ui`: one HTML shell per page and the static files they load, all
shipped in this package (nothing from another host; the Content-Security-Policy forbids it).

The shells carry no data: each page's script reads `/ui/api` with the admin token the browser
keeps for its session, so serving them needs no token.
"""

from __future__ import annotations

import re
from importlib.resources import files
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse

STATIC = files("server.ui") / "static"
_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,40}\.(js|css|svg|txt)$")
_TYPES = {
    "js": "text/javascript",
    "css": "text/css",
    "svg": "image/svg+xml",
    "txt": "text/plain",
}
SECURITY_HEADERS = {
    # Only this server: no CDN, no inline script, no framing, no form posts elsewhere.
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; "
    "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
    "form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}

router = APIRouter(prefix="/ui", tags=["dashboard"], include_in_schema=False)

Id = Annotated[int, Path(ge=1, le=2**31 - 1)]


def _shell(page: str, title: str) -> HTMLResponse:
    html = (STATIC / "page.html").read_text(encoding="utf-8")
    html = html.replace("{title}", title).replace("{page}", page)
    return HTMLResponse(html, headers={**SECURITY_HEADERS, "Cache-Control": "no-cache"})


@router.get("")
async def root() -> RedirectResponse:
    return RedirectResponse("/ui/")


@router.get("/")
async def experiments_page() -> HTMLResponse:
    return _shell("experiments", "Experiments")


@router.get("/experiments/{experiment_id}")
async def experiment_page(experiment_id: Id) -> HTMLResponse:
    return _shell("experiment", f"Experiment {experiment_id}")


@router.get("/tasks/{task_id}")
async def task_page(task_id: Id) -> HTMLResponse:
    return _shell("task", f"Task {task_id}")


@router.get("/workers")
async def workers_page() -> HTMLResponse:
    return _shell("workers", "Workers")


@router.get("/static/{name}")
async def static(name: str) -> FileResponse:
    match = _NAME.match(name)
    path = STATIC / name
    if match is None or not path.is_file():
        raise HTTPException(status_code=404, detail=f"no dashboard file {name!r}")
    headers = {**SECURITY_HEADERS, "Cache-Control": "no-cache"}
    return FileResponse(str(path), media_type=_TYPES[match.group(1)], headers=headers)
