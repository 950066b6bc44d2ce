"""Shared test fixtures. Tests read ../shared in place (read-only) and skip cleanly when it is absent, except under
CI=true, where a missing ../shared or Chromium fails the run (cienv.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from cienv import pytest_runtest_makereport  # noqa: F401  (the hook: skips for missing ../shared fail under CI=true)

pytest_plugins = ["site_fixtures"]  # simulated_site(scale, frames): tests/site_fixtures.py

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
REFERENCE_RELEASE = SHARED / "reference" / "covidx_us"
REALDATA = SHARED / "realdata"

# Never reach the real Hub from tests; a non-local name fails fast instead of retrying.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("COVIDX_US_PROGRESS", "0")


@pytest.fixture(scope="session")
def reference_release() -> Path:
    """The upstream release files at the pinned commit, as laid out upstream (read-only)."""
    if not (REFERENCE_RELEASE / "utils" / "video_metadata.csv").is_file():
        pytest.skip("../shared/reference/covidx_us is not available")
    return REFERENCE_RELEASE


@pytest.fixture(scope="session")
def realdata() -> Path:
    """The folder of real LUS clips with MANIFEST.csv (read-only)."""
    if not (REALDATA / "MANIFEST.csv").is_file():
        pytest.skip("../shared/realdata is not available")
    return REALDATA


# ---- Tests write only under their temporary folders: the checkout gains no file or folder during a run.

_IGNORED = ("__pycache__", ".pytest_cache", ".hypothesis", ".ruff_cache", ".import_linter_cache")


def _checkout_entries() -> set[str]:
    return {p.name for p in ROOT.iterdir() if p.name not in _IGNORED and not p.name.endswith(".egg-info")}


def pytest_sessionstart(session: pytest.Session) -> None:
    session.config._covidx_entries = _checkout_entries()  # type: ignore[attr-defined]


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    before = getattr(session.config, "_covidx_entries", None)
    if before is None or getattr(session.config, "workerinput", None) is not None:
        return
    new = sorted(_checkout_entries() - before)
    if new:
        print(f"\ntests wrote into the checkout ({ROOT}): {', '.join(new)}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
