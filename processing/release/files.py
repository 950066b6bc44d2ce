"""Fetch and verify the upstream COVIDx-US release files (CSV metadata, label files, masks).

The release is read at one pinned upstream commit. Every file is checked against the sha256 pinned in
``metadata/release_pins.json`` before anything parses it, whether it comes from the raw upstream URLs (downloaded
once into a cache folder, atomically) or from a local folder laid out like the upstream repository. A folder that is
not the pinned upstream is only accepted as a *custom* release (no digests; see :mod:`processing.release.catalogue`).

This module knows files, URLs and digests. It must not parse CSV rows (that is :mod:`processing.release.catalogue`) and
must not touch pixels or video sources.
"""

from __future__ import annotations

import functools
import json
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import requests

from processing.errors import ReleaseError
from processing.fileutil import atomic_write, sha256_file
from processing.project import data_path

log = logging.getLogger(__name__)

UPSTREAM_REPO = "nrc-cnrc/COVID-US"
PINNED_COMMIT = "caf3aca8dcc17a43ba7c0088f36aba968c7d741e"
DEFAULT_BASE_URL = f"https://raw.githubusercontent.com/{UPSTREAM_REPO}"
BASE_URL_ENV = "COVIDX_US_RELEASE_URL"  # overrides DEFAULT_BASE_URL; a file's URL is <base>/<commit>/<path>
CACHE_ENV = "COVIDX_US_CACHE"
METADATA_DIR = data_path("metadata")  # the checkout's metadata/, or the installed copy
PINS_PATH = METADATA_DIR / "release_pins.json"
MASK_DIR = "data/mask"


@dataclass(frozen=True)
class Pins:
    """The pinned upstream: commit, the sha256 of each metadata file read, and of each mask in ``data/mask``."""

    repository: str
    commit: str
    files: dict[str, str]   # release-relative path -> sha256
    masks: dict[str, str]   # mask file name -> sha256

    def digest(self, path: str) -> str:
        """The pinned sha256 of a release-relative path (metadata file or ``data/mask/<name>``)."""
        if path in self.files:
            return self.files[path]
        if path.startswith(MASK_DIR + "/") and path[len(MASK_DIR) + 1:] in self.masks:
            return self.masks[path[len(MASK_DIR) + 1:]]
        raise ReleaseError(f"{path}: not a file of the pinned release {self.repository}@{self.commit}")


@functools.lru_cache(maxsize=4)
def load_pins(path: Path = PINS_PATH) -> Pins:
    """Read the pinned digests (``metadata/release_pins.json``)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        return Pins(data["repository"], data["commit"], dict(data["files"]), dict(data["masks"]))
    except (OSError, ValueError, KeyError) as exc:
        raise ReleaseError(f"{path}: cannot read the pinned release digests ({exc})") from exc


def base_url(override: str | None = None) -> str:
    """The raw-file base URL: ``override``, else ``$COVIDX_US_RELEASE_URL``, else GitHub's raw host."""
    return (override or os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL).rstrip("/")


def file_url(path: str, *, commit: str = PINNED_COMMIT, base: str | None = None) -> str:
    """The URL of one release file at ``commit``: ``<base>/<commit>/<path>`` (spaces quoted)."""
    return f"{base_url(base)}/{commit}/{requests.utils.quote(path)}"


def default_cache_dir() -> Path:
    """``$COVIDX_US_CACHE``, else ``$XDG_CACHE_HOME/covidx-us``, else ``~/.cache/covidx-us``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "covidx-us"


@functools.lru_cache(maxsize=4096)
def _digest(path: str, size: int, mtime_ns: int) -> str:
    # Keyed on size and mtime so a file replaced in place is hashed again.
    return sha256_file(path)


def file_digest(path: Path) -> str:
    """sha256 of a file, memoised per (path, size, mtime)."""
    stat = path.stat()
    return _digest(str(path), stat.st_size, stat.st_mtime_ns)


def verify_file(root: Path, rel: str, pins: Pins | None = None) -> Path:
    """Return ``root/rel`` after checking it against its pinned digest; ReleaseError naming file and digests otherwise."""
    pins = pins or load_pins()
    expected = pins.digest(rel)
    path = Path(root) / rel
    if not path.is_file():
        raise ReleaseError(f"{path}: missing release file (expected sha256 {expected}, found no file)")
    found = file_digest(path)
    if found != expected:
        raise ReleaseError(
            f"{path}: sha256 mismatch: expected {expected}, found {found}; this is not the pinned upstream file "
            f"({pins.repository}@{pins.commit}); pass --custom-release (custom=True) to use your own catalogue"
        )
    return path


def _download(url: str, dest: Path, expected: str, timeout: float) -> None:
    try:
        with requests.get(url, stream=True, timeout=timeout) as response:
            if response.status_code != 200:
                raise ReleaseError(f"{url}: HTTP {response.status_code} while fetching a release file")
            with atomic_write(dest) as tmp:
                with open(tmp, "wb") as handle:
                    for chunk in response.iter_content(1 << 16):
                        handle.write(chunk)
                found = sha256_file(tmp)
                if found != expected:
                    raise ReleaseError(f"{url}: sha256 mismatch: expected {expected}, found {found}")
    except requests.RequestException as exc:
        raise ReleaseError(f"{url}: cannot fetch release file ({exc})") from exc


def fetch_file(rel: str, cache_dir: Path | None = None, *, base: str | None = None, timeout: float = 60.0) -> Path:
    """Return the verified local copy of one pinned release file, downloading it into the cache when absent.

    The cache is ``<cache_dir>/release/<commit>/<rel>`` (laid out like upstream, so it is itself a release dir).
    A cached file that fails its digest is fetched again; a download that fails its digest is never kept.
    """
    pins = load_pins()
    root = release_cache(cache_dir, pins)
    expected = pins.digest(rel)
    path = root / rel
    if path.is_file() and file_digest(path) == expected:
        return path
    url = file_url(rel, commit=pins.commit, base=base)
    log.info("fetching %s", url)
    _download(url, path, expected, timeout)
    return path


def release_cache(cache_dir: Path | None = None, pins: Pins | None = None) -> Path:
    """The folder holding the downloaded pinned release inside ``cache_dir``."""
    pins = pins or load_pins()
    return Path(cache_dir or default_cache_dir()) / "release" / pins.commit


def fetch_release(
    cache_dir: Path | None = None,
    *,
    files: Iterable[str] | None = None,
    masks: bool = False,
    base: str | None = None,
    timeout: float = 60.0,
) -> Path:
    """Download (or reuse) the pinned metadata files, and every mask if ``masks``; return the release folder."""
    pins = load_pins()
    for rel in files if files is not None else pins.files:
        fetch_file(rel, cache_dir, base=base, timeout=timeout)
    if masks:
        for name in sorted(pins.masks):
            fetch_file(f"{MASK_DIR}/{name}", cache_dir, base=base, timeout=timeout)
    return release_cache(cache_dir, pins)


def verify_release_dir(root: Path, files: Iterable[str] | None = None) -> Path:
    """Check the pinned metadata files (all of them unless ``files``) in a local upstream-layout folder."""
    pins = load_pins()
    root = Path(root)
    if not root.is_dir():
        raise ReleaseError(f"{root}: release directory does not exist")
    for rel in files if files is not None else pins.files:
        verify_file(root, rel, pins)
    return root


def verify_masks(root: Path, names: Iterable[str] | None = None) -> None:
    """Check masks in ``root/data/mask`` against the pinned manifest (all 353 unless ``names``)."""
    pins = load_pins()
    for name in names if names is not None else sorted(pins.masks):
        verify_file(root, f"{MASK_DIR}/{name}", pins)
