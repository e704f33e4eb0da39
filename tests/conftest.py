"""Suite-wide fixtures and rules.

- Every test starts without MORPHML_* settings from the environment.
- Every test has a deadline (pytest-timeout, configured in pyproject.toml); `slow` tests, which
  start real servers and workers, get SLOW_TIMEOUT_SECONDS unless they ask for their own.
- Under CI=true no test may skip: every skip in this suite stands for something missing (a
  database, a package, a data file), and in CI that is a broken environment, not a reason to pass.
  Locally the skips stay, with their reasons (`-ra` lists them).
"""

from __future__ import annotations

import os
from collections.abc import Generator
from typing import Any

import pytest

pytest_plugins = ["pytester"]  # tests/test_suite_rules.py runs small suites under these rules

# The chaos test runs 200-230 s on a loaded 2-core machine and gives up by itself at 420 s.
SLOW_TIMEOUT_SECONDS = 600


def in_ci() -> bool:
    return os.environ.get("CI") == "true"


@pytest.fixture(autouse=True)
def _clear_morphml_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("MORPHML_"):
            monkeypatch.delenv(name)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("slow") and not item.get_closest_marker("timeout"):
            item.add_marker(pytest.mark.timeout(SLOW_TIMEOUT_SECONDS))


def _skip_reason(longrepr: Any) -> str:
    """A skip's longrepr is (path, line, "Skipped: reason"); anything else is shown as it is."""
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        path, line, reason = longrepr
        return f"{reason} ({path}:{line})"
    return str(longrepr)


def _fail_skip(report: pytest.TestReport | pytest.CollectReport) -> None:
    report.outcome = "failed"
    report.longrepr = f"CI=true: no test may skip. {_skip_reason(report.longrepr)}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: Any) -> Generator[None, Any, None]:
    """A skip in setup or in the test body (pytest.skip, importorskip, a skip mark)."""
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    if in_ci() and report.skipped and not hasattr(report, "wasxfail"):
        _fail_skip(report)


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Generator[None, Any, None]:
    """A skip while importing a module (a module-level importorskip or pytest.skip)."""
    outcome = yield
    report: pytest.CollectReport = outcome.get_result()
    if in_ci() and report.skipped:
        _fail_skip(report)
