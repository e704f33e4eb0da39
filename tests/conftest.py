"""Suite-wide fixtures: every test starts without MORPHML_* settings from the environment."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(autouse=True)
def _clear_morphml_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("MORPHML_"):
            monkeypatch.delenv(name)
