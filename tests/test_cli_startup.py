"""``covidx-us --help``, ``<cmd> --help`` and ``--version`` load no heavy library (the 0.3 s target is measured in
benchmarks/bench_startup.py; here: which modules a help run imports, which is what decides it)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from processing.cli import COMMANDS

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("numpy", "cv2", "PIL", "av", "datasets", "pyarrow", "pandas", "requests", "huggingface_hub", "selenium",
         "yt_dlp", "covidx_us", "processing.pixels", "processing.sources", "processing.hub", "processing.report")

PROBE = """
import json, sys
from processing.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
print(json.dumps(sorted(sys.modules)), file=sys.stderr)
"""


def _imported(*argv: str) -> tuple[str, set[str]]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-c", PROBE, *argv], capture_output=True, text=True, env=env,
                            timeout=60, check=True)
    return result.stdout, set(json.loads(result.stderr.strip().splitlines()[-1]))


def _heavy(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if any(m == h or m.startswith(h + ".") for h in HEAVY))


@pytest.mark.parametrize("command", [None, *(name for name, _module in COMMANDS)])
def test_help_imports_no_heavy_module(command):
    out, modules = _imported(*([command] if command else []), "--help")
    assert "usage: covidx-us" in out
    assert _heavy(modules) == []


def test_version_names_the_package_version_and_loads_nothing_heavy():
    from processing import __version__

    out, modules = _imported("--version")
    assert out.startswith(f"covidx-us {__version__}")
    assert _heavy(modules) == []
