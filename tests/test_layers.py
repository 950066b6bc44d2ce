"""The one-way rule between layers (pyproject.toml's import-linter contracts) holds, and the check can fail."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT = shutil.which("lint-imports")
pytestmark = pytest.mark.skipif(LINT is None, reason="import-linter is not installed (pip install -e '.[test]')")

LAYER_PACKAGES = ("release", "sources", "pixels", "build", "hub", "cli", "demo", "report")


def _lint(root: Path) -> subprocess.CompletedProcess:
    # lint-imports reads pyproject.toml in its working directory and imports the packages found from there.
    return subprocess.run([LINT, "--no-cache"], cwd=root, capture_output=True, text=True, timeout=300,
                          env={"PATH": str(Path(sys.executable).parent), "PYTHONPATH": str(root)})


def _copy_tree(tmp_path: Path) -> Path:
    copy = tmp_path / "tree"
    shutil.copytree(ROOT / "processing", copy / "processing", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", copy / "pyproject.toml")
    shutil.copy(ROOT / "covidx_us.py", copy / "covidx_us.py")
    return copy


def test_processing_has_one_folder_per_layer_and_a_handful_of_root_modules():
    folders = {p.name for p in (ROOT / "processing").iterdir() if p.is_dir() and p.name != "__pycache__"}
    assert set(LAYER_PACKAGES) <= folders
    root_modules = sorted(p.name for p in (ROOT / "processing").glob("*.py") if p.name != "__init__.py")
    assert len(root_modules) <= 6, root_modules


def test_the_contracts_are_kept():
    result = _lint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        ("processing/pixels/crop.py", "import requests", "Pixels know no HTTP"),
        ("processing/sources/grepmed.py", "import cv2", "Sources know no pixels"),
        ("processing/release/catalogue.py", "import processing.pixels.pipeline", "Layers"),
        ("processing/build/splits.py", "import processing.demo.simulate", "Only the CLI imports the demo"),
        ("processing/hub/export.py", "import covidx_us", "nothing imports covidx_us"),
    ],
)
def test_a_forbidden_import_breaks_a_contract(tmp_path, module, line, contract):
    copy = _copy_tree(tmp_path)
    path = copy / module
    path.write_text(path.read_text() + f"\n{line}  # noqa\n")
    result = _lint(copy)
    assert result.returncode != 0
    broken = result.stdout.split("Broken contracts", 1)[1]
    assert contract in broken, result.stdout


def test_the_builder_imports_no_layer_above_it():
    """covidx_us.py is a top-level module, which import-linter cannot place in a layer: checked here."""
    tree = ast.parse((ROOT / "covidx_us.py").read_text())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    imported |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    above = [name for name in imported if name.split(".")[:2] in (["processing", "cli"], ["processing", "demo"],
                                                                   ["processing", "report"])]
    assert not above, above
    assert any(name.startswith("processing.build") for name in imported)  # the walk sees the builder's imports
