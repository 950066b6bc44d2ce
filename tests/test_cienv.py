"""The CI guard: under CI=true, a skip for a missing ../shared or Chromium fails the run; other skips stay skips."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

INNER = '''
import pytest

def test_needs_shared():
    pytest.skip("../shared/realdata is not available")

def test_needs_a_clip():
    pytest.skip("/work/shared/realdata/videos/x.mp4 is not available")

def test_needs_chromium():
    pytest.skip("needs /usr/bin/chromium and /usr/bin/chromedriver")

def test_needs_torch():
    pytest.skip("torch is not installed")
'''


@pytest.mark.parametrize("ci,failed,skipped", [("true", 3, 1), ("", 0, 4), ("false", 0, 4)])
def test_skips_for_a_missing_shared_or_chromium_fail_only_under_ci(pytester, monkeypatch, ci, failed, skipped):
    monkeypatch.setenv("CI", ci)
    pytester.makeconftest("from cienv import pytest_runtest_makereport  # noqa: F401\n")
    pytester.makepyfile(test_inner=INNER)
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(failed=failed, skipped=skipped)
    if failed:
        result.stdout.fnmatch_lines(["*CI=true and the test would skip: ../shared/realdata is not available*"])
