"""Print the OpenAPI document: `python -m server.openapi > openapi.json` (`make openapi`)."""

from __future__ import annotations

import json
from typing import Any

from server.config import Settings
from server.main import create_app


def openapi_document() -> dict[str, Any]:
    """The document for default settings (creating the app opens no database connection)."""
    return create_app(Settings(database_url="sqlite://")).openapi()


def render() -> str:
    return json.dumps(openapi_document(), indent=2, sort_keys=False) + "\n"


if __name__ == "__main__":
    print(render(), end="")
