"""What covidx-us ships beside its code: its data files and its version. Imports nothing heavy.

The data files (``metadata/``: release pins, errata, the paper's Table 2; ``masks/``: user mask overrides;
``dataset_infos.json``: expected split sizes) live at the repository's top level. A wheel carries a copy of them in
``processing/_data/`` (``setup.py`` puts it there at build time). :func:`data_path` is the one place that says where
they are: in the checkout around this package when there is one (an editable install, ``PYTHONPATH``), else in the
installed copy. Nothing else in the project may work out these paths itself.

:func:`version_info` is the tool's version, and the git commit when the code runs from a checkout; the dataset card
and ``build_record.json`` record it.
"""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path

from processing import __version__

DATA_NAMES = ("metadata", "masks", "dataset_infos.json")  # top-level files and folders shipped in the wheel
_PACKAGE = Path(__file__).resolve().parent
_CHECKOUT = _PACKAGE.parent  # the repository root when running from a checkout
_INSTALLED_DATA = _PACKAGE / "_data"


def from_checkout() -> bool:
    """Whether this code runs from a source checkout (its data files beside it), not from an installed wheel."""
    return (_CHECKOUT / "pyproject.toml").is_file() and (_CHECKOUT / "metadata").is_dir()


def data_path(name: str) -> Path:
    """The path of a shipped data file or folder, e.g. ``data_path("metadata/errata.csv")``.

    The file need not exist (``masks/`` may hold nothing but its README); callers say what is missing.
    """
    if name.split("/", 1)[0] not in DATA_NAMES:
        raise ValueError(f"{name!r} is not a shipped data file; valid roots: {', '.join(DATA_NAMES)}")
    return (_CHECKOUT if from_checkout() else _INSTALLED_DATA) / name


@functools.lru_cache(maxsize=1)
def git_state() -> tuple[str, bool] | None:
    """(commit, has uncommitted changes) of the checkout this code runs from; None when not a git checkout."""
    if not from_checkout() or not (_CHECKOUT / ".git").exists():
        return None
    try:
        commit = subprocess.run(["git", "-C", str(_CHECKOUT), "rev-parse", "HEAD"], capture_output=True,
                                text=True, timeout=10, check=True).stdout.strip()
        status = subprocess.run(["git", "-C", str(_CHECKOUT), "status", "--porcelain", "--untracked-files=no"],
                                capture_output=True, text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):  # no git on this machine, or not a repository after all
        return None
    return (commit, bool(status.strip())) if commit else None


def version_info() -> dict[str, object]:
    """``{"version": "0.1.0", "git_commit": "<sha>" | None, "git_modified": bool | None}`` (JSON-ready)."""
    state = git_state()
    return {"version": __version__, "git_commit": state[0] if state else None,
            "git_modified": state[1] if state else None}


def version_text() -> str:
    """``0.1.0`` or ``0.1.0 (git 4d1b848, modified)``: what ``covidx-us --version`` and the card say."""
    state = git_state()
    if state is None:
        return __version__
    return f"{__version__} (git {state[0][:7]}{', modified' if state[1] else ''})"
