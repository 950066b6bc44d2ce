"""The built wheel carries metadata/, masks/ and dataset_infos.json and reads them from any working directory.

The wheel is built from a copy of the sources (the build writes build/ and *.egg-info/ beside its input) and unpacked
with ``pip install --no-deps --target``; the fresh-venv install with every dependency, the demo and ``report`` from
that venv run in CI (.ci/run), where the dependencies come from the machine's package indexes.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from processing import __version__
from processing.project import DATA_NAMES

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "LICENSE", "covidx_us.py", "processing",
           *DATA_NAMES)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    src = tmp_path_factory.mktemp("src") / "covidx-us"
    src.mkdir()
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "_data"))
        else:
            shutil.copy2(ROOT / name, src / name)
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out),
                    str(src)], check=True, capture_output=True, timeout=300)
    (path,) = out.glob("covidx_us-*.whl")
    return path


def test_the_wheel_ships_the_data_files_inside_the_package(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in ("metadata/errata.csv", "metadata/release_pins.json", "metadata/table2.csv", "masks/README.md",
                 "dataset_infos.json"):
        assert f"processing/_data/{name}" in names
    assert "covidx_us.py" in names and wheel.name.startswith(f"covidx_us-{__version__}-")


def test_an_installed_wheel_reads_its_own_data_from_any_directory(wheel, tmp_path):
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel)],
                   check=True, capture_output=True, timeout=300)
    elsewhere = tmp_path / "empty"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(site)  # only the installed copy: no checkout on the path
    probe = ("import json, covidx_us; from processing.project import data_path, from_checkout; "
             "from processing.release.catalogue import load_errata; "
             "print(json.dumps({'checkout': from_checkout(), 'errata': len(load_errata()), "
             "'metadata': str(data_path('metadata')), 'masks': str(covidx_us.PROJECT_MASK_DIR), "
             "'expected': sorted(covidx_us.load_expected())}))")
    result = subprocess.run([sys.executable, "-c", probe], cwd=elsewhere, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    seen = json.loads(result.stdout)
    assert seen["checkout"] is False and seen["errata"] > 10
    assert seen["metadata"] == str((site / "processing" / "_data" / "metadata").resolve())
    assert seen["masks"] == str((site / "processing" / "_data" / "masks").resolve())
    assert seen["expected"] == sorted(json.loads((ROOT / "dataset_infos.json").read_text()))
    version = subprocess.run([sys.executable, "-m", "processing.cli", "--version"], cwd=elsewhere, env=env,
                             capture_output=True, text=True, timeout=60)
    assert version.stdout == f"covidx-us {__version__}\n"  # no git commit outside a checkout


def test_a_checkout_reads_the_top_level_files_and_names_its_commit():
    from processing.project import data_path, from_checkout, version_info, version_text

    assert from_checkout() and data_path("metadata/errata.csv") == ROOT / "metadata" / "errata.csv"
    with pytest.raises(ValueError, match="not a shipped data file"):
        data_path("tests/conftest.py")
    info = version_info()
    assert info["version"] == __version__
    if (ROOT / ".git").exists() and shutil.which("git"):
        head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True).stdout
        assert info["git_commit"] == head.strip() and head.strip()[:7] in version_text()
