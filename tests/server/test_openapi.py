"""openapi.json at the repository root is what the app generates (`make openapi` refreshes it)."""

from __future__ import annotations

import json
from pathlib import Path

from server.openapi import openapi_document, render

COMMITTED = Path(__file__).resolve().parents[2] / "openapi.json"


def test_committed_openapi_matches_the_app() -> None:
    assert COMMITTED.read_text() == render(), "openapi.json is stale: run `make openapi`"


def test_operation_ids_are_tag_dash_name() -> None:
    for path, operations in openapi_document()["paths"].items():
        for operation in operations.values():
            tag, _, name = operation["operationId"].partition("-")
            assert tag == operation["tags"][0] and name, path


def test_committed_file_is_valid_json() -> None:
    assert json.loads(COMMITTED.read_text())["info"]["title"] == "MorphML control plane"
