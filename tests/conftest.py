"""Suite-wide fixtures and rules.

- Every test starts without MORPHML_* settings from the environment.
- Every test has a deadline (pytest-timeout, configured in pyproject.toml); `slow` tests, which
  start real servers and workers, get SLOW_TIMEOUT_SECONDS unless they ask for their own.
"""

from __future__ import annotations

import os

import pytest

pytest_plugins = ["pytester"]  # tests/test_suite_rules.py runs small suites under these rules

# The chaos test runs 200-230 s on a loaded 2-core machine and gives up by itself at 420 s.
SLOW_TIMEOUT_SECONDS = 600


@pytest.fixture(autouse=True)
def _clear_morphml_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("MORPHML_"):
            monkeypatch.delenv(name)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("slow") and not item.get_closest_marker("timeout"):
            item.add_marker(pytest.mark.timeout(SLOW_TIMEOUT_SECONDS))
