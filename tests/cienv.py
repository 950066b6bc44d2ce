"""Under ``CI=true`` a test that skips because ../shared or Chromium is missing fails instead: a broken CI set-up must
not pass silently. Elsewhere (a developer's machine without the reference data) those tests skip as before."""

from __future__ import annotations

import os

import pytest

# Skip reasons that mean "this machine lacks what CI must provide".
ENVIRONMENT_SKIPS = ("../shared", "shared/realdata", "shared/reference", "chromium", "chromedriver")


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):  # type: ignore[no-untyped-def]
    outcome = yield
    report = outcome.get_result()
    if not (report.skipped and in_ci() and isinstance(report.longrepr, tuple)):
        return
    reason = str(report.longrepr[2]).removeprefix("Skipped: ")
    if any(marker in reason.lower() for marker in ENVIRONMENT_SKIPS):
        report.outcome = "failed"
        report.longrepr = (f"CI=true and the test would skip: {reason}. The CI set-up must provide ../shared and "
                           f"Chromium (see .ci/run)")
