"""The interactive docs work without internet: /docs and /redoc load everything from the server.

GPU clusters often cannot reach a CDN, and FastAPI's default pages then stay blank.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from urllib.parse import urlsplit

import pytest
from starlette.testclient import TestClient

ABSOLUTE_URL = re.compile(r"""(?:https?:)?//[^\s"'<>)]+""")
# What the page loads: <script src>, <link href>, and Swagger UI's `url: '...'` (the document).
REFERENCED = re.compile(r"""(?:src|href)="([^"]+)"|url: '([^']+)'""")


def _referenced(html: str) -> list[str]:
    return [a or b for a, b in REFERENCED.findall(html)]


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_reference_no_other_host(client: TestClient, page: str) -> None:
    response = client.get(page)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    foreign = [url for url in ABSOLUTE_URL.findall(response.text) if urlsplit(url).netloc]
    assert foreign == [], f"{page} loads from other hosts: {foreign}"


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_everything_a_docs_page_loads_is_served_by_the_app(client: TestClient, page: str) -> None:
    urls = _referenced(client.get(page).text)
    assert any(url.endswith(".js") for url in urls), urls
    if page == "/docs":
        assert any(url.endswith(".css") for url in urls), urls
    for url in urls:
        assert url.startswith("/"), url
        answer = client.get(url)
        assert answer.status_code == 200, url
        assert answer.content, url


def test_assets_have_the_right_types(client: TestClient) -> None:
    js = client.get("/docs/assets/swagger-ui-bundle.js")
    css = client.get("/docs/assets/swagger-ui.css")
    assert "javascript" in js.headers["content-type"] and b"SwaggerUIBundle" in js.content
    assert css.headers["content-type"].startswith("text/css")
    assert client.get("/docs/assets/redoc.standalone.js").status_code == 200
    assert client.get("/docs/assets/nothing-here.js").status_code == 404
    assert client.get("/docs/assets/../../server/main.py").status_code == 404


def test_docs_honour_the_root_path_behind_a_proxy(client: TestClient) -> None:
    proxied = TestClient(client.app, root_path="/morphml")
    html = proxied.get("/docs").text
    assert "/morphml/docs/assets/swagger-ui-bundle.js" in html
    assert "'/morphml/openapi.json'" in html


def test_docs_are_public_and_the_api_still_needs_tokens(
    make_client: Callable[..., TestClient],
) -> None:
    secured = make_client(admin_token="docs-admin-token", worker_token="docs-worker-token")
    for public in ("/docs", "/redoc", "/openapi.json", "/docs/assets/swagger-ui.css"):
        assert secured.get(public).status_code == 200, public
    assert secured.get("/v1/experiments").status_code == 401
    assert secured.post("/v1/workers", json={"name": "w"}).status_code == 401
