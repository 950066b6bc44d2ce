"""The one downloader every source engine shares: catalogue videos in, verified clip files in the cache out.

For each video it tries, in order: the source engine's candidates on the original hosts, the same candidates through
each mirror prefix (``PREFIX + host + path[?query]`` of the original URL: an institutional mirror, a loopback test
site, or ``https://web.archive.org/web/2021id_/``), then the manual folder (files named by video id or original file
name, or a zip holding the original file name), then, with ``copies=True``, the registered public copies of the video
(:mod:`processing.release.copies`, in registry order, each from its own host and through every mirror prefix; kept
only when its sha256 and size equal the registry's). Every result is ``ok`` (the original host), ``mirror``,
``manual``, ``copy`` or ``missing`` with a reason; :attr:`DownloadResult.origin` names it for the examples.

``use_original=False`` (``--no-original``) contacts the mirrors only, and holds through redirects: a mirror that
redirects to any other host (an original host, a copy's host) is refused. The manifest and the result record the
URL that actually served the bytes (after redirects), not only the one asked for.

What it guarantees: timeouts; retries with backoff only on transient failures (connection errors, 429 with
Retry-After, 5xx; urllib3's ``Retry``; a host name that does not resolve is not retried, and not asked again in
the run); resume with HTTP Range from a ``.part`` file kept across runs (validated with
``If-Range`` and ``Content-Range``; restarted when the server ignores the range); redirects followed only to the
source's hosts (and the mirror's host); a size cap; content sniffing (an HTML/JSON/empty body is never kept as a
video) and a PyAV decode check against the catalogue's trusted width, height and frame count before the file is
renamed into place; per-host politeness (bounded concurrency and a delay between requests); zip archives opened
safely (no member escaping the target, bounded total size and compression ratio). Each verified file's sha256 and
size go into ``<cache_dir>/downloads/manifest.json`` (written atomically) so a rerun re-hashes and reuses it.

This module does not touch pixels beyond the decode check, and does not know any site: that is the engines' job
(:mod:`processing.sources`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import threading
import time
import urllib.parse
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from processing import __version__
from processing.errors import CovidxError, DownloadError, check_choice, check_int, check_mirror, check_number
from processing.fileutil import atomic_write, sha256_file, sweep_leftovers
from processing.progress import progress
from processing.release.copies import Copy, load_copies
from processing.sources import Candidate, SourceEngine, basename, get_engine
from processing.vocabulary import DOWNLOAD_STATUSES

if TYPE_CHECKING:
    from processing.release.catalogue import Video

log = logging.getLogger(__name__)

# Where a clip came from, per status (the examples' ``origin`` column).
ORIGINS = {"ok": "original", "mirror": "mirror", "manual": "manual", "copy": "copy", "missing": "missing"}
VIDEO_KINDS = ("mp4", "mov", "gif", "avi", "wmv", "webm")
EXTENSIONS = {"mp4": ".mp4", "mov": ".mov", "gif": ".gif", "avi": ".avi", "wmv": ".wmv", "webm": ".webm",
              "zip": ".zip"}
DEFAULT_USER_AGENT = f"covidx-us/{__version__} (+https://github.com/; research dataset rebuild)"
_ASF_GUID = bytes.fromhex("3026B2758E66CF11A6D900AA0062CE6C")
_PAGE_CAP = 32 * 1024 * 1024
_CHUNK = 64 * 1024


@dataclass(frozen=True)
class DownloadOptions:
    """How to download. ``cache_dir/downloads`` holds verified files, ``.part`` files and the manifest.

    Args:
        cache_dir: cache root (created).
        mirrors: URL prefixes tried after the original hosts, in order (``http://127.0.0.1:PORT/``,
            ``https://web.archive.org/web/2021id_/``); a missing trailing ``/`` is added.
        data_dir: manual folder searched last (files named ``<video id>.<ext>`` or by original file name, or zips).
        timeout: seconds to connect and between two reads.
        retries: retries of a transient failure (connection error, 429, 5xx, interrupted body) per URL.
        max_bytes: largest file accepted (checked against Content-Length and while streaming).
        per_host: concurrent requests per host.
        delay: seconds between two requests to the same host.
        backoff: urllib3 backoff factor (sleep ``backoff * 2**(n-1)`` before retry n).
        workers: videos downloaded in parallel.
        browser: allow headless Chromium for pages that build their link with JavaScript.
        max_archive_bytes: largest total uncompressed size of an archive.
        max_ratio: largest compression ratio of an archive member (zip-bomb guard).
        user_agent: User-Agent for sources that do not ask for a browser one.
        decode_check: open the file with PyAV and compare with the catalogue before keeping it.
        use_original: try the original hosts first (False: mirrors and the manual folder only, for hermetic tests
            and archive-only rebuilds; a mirror's redirect to another host is refused; copies come only through
            the mirrors).
        copies: last, try the registered public copies of a video (kept only when their sha256 matches).
        copy_registry: the registry CSV (None: the project's ``metadata/copies.csv``).
    """

    cache_dir: Path
    mirrors: tuple[str, ...] = ()
    data_dir: Path | None = None
    timeout: float = 30
    retries: int = 4
    max_bytes: int = 2 * 1024**3
    per_host: int = 2
    delay: float = 1.0
    backoff: float = 1.0
    workers: int = 4
    browser: bool = True
    max_archive_bytes: int = 8 * 1024**3
    max_ratio: float = 200.0
    user_agent: str = DEFAULT_USER_AGENT
    decode_check: bool = True
    use_original: bool = True
    copies: bool = False
    copy_registry: Path | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "cache_dir", Path(self.cache_dir))
        if self.copy_registry is not None:
            object.__setattr__(self, "copy_registry", Path(self.copy_registry))
        if self.data_dir is not None:
            object.__setattr__(self, "data_dir", Path(self.data_dir))
        for prefix in self.mirrors:
            check_mirror(prefix)
        object.__setattr__(self, "mirrors", tuple(p if p.endswith("/") else p + "/" for p in self.mirrors))
        for name in ("timeout", "max_bytes", "max_archive_bytes", "max_ratio"):
            check_number(name, getattr(self, name), positive=True)
        for name in ("per_host", "workers"):
            check_int(name, getattr(self, name), minimum=1)
        check_int("retries", self.retries, minimum=0)
        for name in ("delay", "backoff"):
            check_number(name, getattr(self, name), minimum=0)

    @property
    def downloads(self) -> Path:
        return self.cache_dir / "downloads"


@dataclass(frozen=True)
class DownloadResult:
    """What happened to one video. ``url`` is the URL that served the bytes (or the manual file); ``reason`` says
    why a video is missing (and, for ``mirror``/``manual``/``copy``, why the earlier steps failed); ``copy``
    describes the public copy used (repository, commit, path, changes...; status ``copy`` only)."""

    video_id: str
    status: str
    path: Path | None
    sha256: str | None
    size: int | None
    url: str | None
    reason: str | None
    copy: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        check_choice("download status", self.status, DOWNLOAD_STATUSES)

    @property
    def origin(self) -> str:
        """original / mirror / manual / copy (or missing): where the clip came from."""
        return ORIGINS[self.status]


class _CopyHost(SourceEngine):
    """The host of a registered copy, as an engine: redirects may stay on that host only."""

    name = "copy"

    def __init__(self, host: str) -> None:
        self.hosts = (host,)


class _Failure(Exception):
    """One candidate failed; the message is the reason shown to the user."""


# ---------------------------------------------------------------------------------------------- pure helpers

def sniff(head: bytes) -> str:
    """What the first bytes of a body are: a video kind (``mp4 mov gif avi wmv webm``), ``zip``, or ``html``,
    ``json``, ``empty``, ``unknown``. Decides nothing from headers (servers lie; the Wayback gzip bug)."""
    if not head.strip():
        return "empty"
    box = head[4:8]
    if box == b"ftyp":
        return "mov" if head[8:12] == b"qt  " else "mp4"
    if box in (b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot"):
        return "mov"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "avi"
    if head[:16] == _ASF_GUID:
        return "wmv"
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return "webm"
    if head[:4] == b"PK\x03\x04":
        return "zip"
    text = head.lstrip()[:256].lower()
    if text.startswith((b"{", b"[")):
        return "json"
    if text.startswith((b"<!doctype", b"<html", b"<?xml", b"<head", b"<body", b"<")):
        return "html"
    return "unknown"


def mirror_url(prefix: str, url: str) -> str:
    """``prefix + host + path[?query]`` of ``url`` (the mirror layout)."""
    parts = urllib.parse.urlsplit(url)
    return prefix + parts.netloc + parts.path + (f"?{parts.query}" if parts.query else "")


def check_member_name(name: str) -> PurePosixPath:
    """The archive member's relative path; :class:`DownloadError` when it is absolute or climbs out (``..``)."""
    normalized = name.replace("\\", "/")
    path = PurePosixPath(normalized)
    if normalized.startswith("/") or (len(normalized) > 1 and normalized[1] == ":") or ".." in path.parts:
        raise DownloadError(f"unsafe archive member name {name!r} (absolute or escaping the target)")
    return path


def check_archive(path: Path, *, max_total: int, max_ratio: float) -> list[zipfile.ZipInfo]:
    """Open a zip and check every member before anything is extracted: names stay inside the target, the total
    uncompressed size is at most ``max_total`` and no member expands more than ``max_ratio`` times."""
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
    except (zipfile.BadZipFile, OSError) as exc:
        raise DownloadError(f"{path.name} is not a readable zip archive: {exc}") from exc
    total = 0
    for info in infos:
        check_member_name(info.filename)
        total += info.file_size
        if info.file_size > 1024 * 1024 and info.file_size > max_ratio * max(info.compress_size, 1):
            raise DownloadError(f"archive member {info.filename!r} expands {info.file_size} bytes from "
                                f"{info.compress_size} (ratio above {max_ratio:g})")
    if total > max_total:
        raise DownloadError(f"archive {path.name} expands to {total} bytes, above the limit of {max_total}")
    return infos


def safe_extract(archive_path: Path, target: Path, *, max_total: int = 8 * 1024**3,
                 max_ratio: float = 200.0) -> list[Path]:
    """Extract every file of a zip under ``target`` after :func:`check_archive`; bytes are counted while
    writing so a lying header cannot exceed ``max_total``. Returns the written paths."""
    infos = check_archive(archive_path, max_total=max_total, max_ratio=max_ratio)
    target = target.resolve()
    written: list[Path] = []
    budget = max_total
    with zipfile.ZipFile(archive_path) as archive:
        for info in infos:
            if info.is_dir():
                continue
            dest = (target / check_member_name(info.filename)).resolve()
            if not dest.is_relative_to(target):
                raise DownloadError(f"unsafe archive member name {info.filename!r} (escapes {target})")
            with atomic_write(dest) as tmp, archive.open(info) as src, open(tmp, "wb") as out:
                budget = _copy_capped(src, out, budget, f"archive {archive_path.name}")
            written.append(dest)
    return written


def _copy_capped(src, out, budget: int, what: str) -> int:
    while chunk := src.read(_CHUNK):
        budget -= len(chunk)
        if budget < 0:
            raise DownloadError(f"{what} expands beyond its size limit")
        out.write(chunk)
    return budget


@dataclass(frozen=True)
class ClipCheck:
    kind: str
    width: int
    height: int
    frames: int | None


def verify_clip(path: Path, video: Video | None = None) -> ClipCheck:
    """Sniff and decode ``path`` with PyAV; compare with ``video.expected`` when it is trusted.

    Frames are counted by demuxing (one packet per frame) only when the catalogue's count is trusted; a count within
    2 frames or 2 % of the catalogue's is accepted (upstream counted with OpenCV's container estimate).
    Raises :class:`DownloadError` naming what is wrong.
    """
    import av

    with open(path, "rb") as handle:
        kind = sniff(handle.read(64))
    if kind not in VIDEO_KINDS:
        raise DownloadError(f"{path.name} is {kind}, not a video")
    expected = getattr(video, "expected", None) if video is not None else None
    trusted = bool(getattr(expected, "trusted", False))
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise DownloadError(f"{path.name} holds no video stream")
            stream = container.streams.video[0]
            first = next(container.decode(stream), None)
            if first is None:
                raise DownloadError(f"{path.name} decodes to zero frames")
            width, height = first.width, first.height
            frames = None
            if trusted and getattr(expected, "frame_count", None):
                container.seek(0)
                frames = sum(1 for packet in container.demux(stream) if packet.size)
    except av.FFmpegError as exc:
        raise DownloadError(f"{path.name} does not decode: {exc}") from exc
    if trusted:
        if (width, height) != (expected.width, expected.height):
            raise DownloadError(f"decoded {width}x{height} but the catalogue expects "
                                f"{expected.width}x{expected.height}")
        want = expected.frame_count
        if want and frames is not None and abs(frames - want) > max(2, 0.02 * want):
            raise DownloadError(f"decoded {frames} frames but the catalogue expects {want}")
    return ClipCheck(kind, width, height, frames)


# ---------------------------------------------------------------------------------------------- manifest

class Manifest:
    """``<cache_dir>/downloads/manifest.json``: verified files by video id and archives by URL (sha256, size)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.path = root / "manifest.json"
        self._lock = threading.Lock()
        self.data: dict[str, dict[str, dict[str, Any]]] = {"files": {}, "archives": {}}
        if self.path.is_file():
            try:
                loaded = json.loads(self.path.read_text())
                self.data["files"].update(loaded.get("files", {}))
                self.data["archives"].update(loaded.get("archives", {}))
            except (ValueError, AttributeError) as exc:
                log.warning("ignoring unreadable %s: %s", self.path, exc)

    def lookup(self, section: str, key: str) -> tuple[Path, dict[str, Any]] | None:
        """The entry's file when it still exists and re-hashes to the recorded sha256; else drop the entry."""
        with self._lock:
            entry = self.data[section].get(key)
        if not entry:
            return None
        path = self.root / entry["path"]
        if path.is_file() and path.stat().st_size == entry["size"] and sha256_file(path) == entry["sha256"]:
            return path, entry
        log.warning("%s no longer matches its manifest entry; fetching it again", path)
        self.forget(section, key)
        return None

    def record(self, section: str, key: str, path: Path, **extra: Any) -> dict[str, Any]:
        entry = {"path": path.relative_to(self.root).as_posix(), "sha256": sha256_file(path),
                 "size": path.stat().st_size, **extra}
        with self._lock:
            self.data[section][key] = entry
            self._save()
        return entry

    def forget(self, section: str, key: str) -> None:
        with self._lock:
            if self.data[section].pop(key, None) is not None:
                self._save()

    def _save(self) -> None:
        with atomic_write(self.path) as tmp:
            tmp.write_text(json.dumps(self.data, indent=1, sort_keys=True) + "\n")


# ---------------------------------------------------------------------------------------------- downloader

@dataclass
class _Route:
    """Where candidates are fetched: the original hosts (``prefix=None``) or one mirror."""

    prefix: str | None

    @property
    def host(self) -> str | None:
        return urllib.parse.urlsplit(self.prefix).hostname if self.prefix else None

    def url(self, url: str) -> str:
        if self.prefix is None or urllib.parse.urlsplit(url).hostname == self.host:
            return url
        return mirror_url(self.prefix, url)


@dataclass
class _Attempt:
    reasons: list[str] = field(default_factory=list)


class _Retry(Retry):
    """urllib3's Retry, except that a host name that does not resolve is not asked again: urllib3 counts it as a
    connect error, and retrying it with back-off costs minutes for nothing."""

    def increment(self, method=None, url=None, response=None, error=None, _pool=None, _stacktrace=None):  # type: ignore[no-untyped-def]
        if isinstance(error, urllib3.exceptions.NameResolutionError):
            raise urllib3.exceptions.MaxRetryError(_pool, url, error) from error
        return super().increment(method, url, response, error, _pool, _stacktrace)


class Downloader:
    """Shared state of one run: HTTP session, per-host slots, manifest, locks, the lazily started browser."""

    def __init__(self, options: DownloadOptions) -> None:
        self.options = options
        self.root = options.downloads
        self.partial = self.root / "partial"
        self.archives = self.root / "archives"
        for folder in (self.root, self.partial, self.archives):
            folder.mkdir(parents=True, exist_ok=True)
        sweep_leftovers((self.root, self.partial, self.archives))  # temporary files of a run killed earlier
        self.manifest = Manifest(self.root)
        self.session = requests.Session()
        retry = _Retry(total=options.retries, connect=options.retries, read=options.retries,
                      status=options.retries, other=0, redirect=False,
                      status_forcelist=(429, 500, 502, 503, 504), allowed_methods=("GET", "HEAD"),
                      backoff_factor=options.backoff, respect_retry_after_header=True, raise_on_status=False)
        adapter = HTTPAdapter(max_retries=retry, pool_maxsize=max(10, options.workers * 2))
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self._guard = threading.Lock()
        self._host_slots: dict[str, threading.BoundedSemaphore] = {}
        self._host_next: dict[str, float] = {}
        self._key_locks: dict[str, threading.Lock] = {}
        self._pages: dict[str, tuple[bytes, str] | str] = {}   # url -> (body, content type) or failure reason
        self._rendered: dict[str, str] = {}
        self._archive_failures: dict[str, str] = {}
        self._manual_files: list[Path] | None = None
        self._dead_hosts: dict[str, str] = {}  # host[:port] -> why it cannot be reached (DNS failure, refused)
        self._served: dict[str, str] = {}  # URL asked for -> URL that answered it (after redirects)
        self.copies: dict[str, tuple[Copy, ...]] = (
            load_copies(options.copy_registry) if options.copy_registry else load_copies()) if options.copies else {}
        self._browser: Any = None
        self._browser_error: str | None = None

    # ---- plumbing

    def close(self) -> None:
        self.session.close()
        if self._browser is not None:
            self._browser.close()

    @contextmanager
    def _key_lock(self, key: str) -> Iterator[None]:
        with self._guard:
            lock = self._key_locks.setdefault(key, threading.Lock())
        with lock:
            yield

    def _enter_host(self, host: str) -> threading.BoundedSemaphore:
        """Take one of ``host``'s ``per_host`` slots and wait out its ``delay``; the caller releases the slot."""
        with self._guard:
            slot = self._host_slots.setdefault(host, threading.BoundedSemaphore(self.options.per_host))
        slot.acquire()
        with self._guard:
            start = max(time.monotonic(), self._host_next.get(host, 0.0))
            self._host_next[host] = start + self.options.delay
        time.sleep(max(0.0, start - time.monotonic()))
        return slot

    @contextmanager
    def _open(self, url: str, engine: SourceEngine, route: _Route, headers: dict[str, str],
              extra_hosts: tuple[str, ...] = ()) -> Iterator[requests.Response]:
        """GET ``url`` streaming, following at most 10 redirects and only to allowed hosts. The host's slot is
        held until the body has been read (politeness covers whole transfers, not just headers)."""
        headers = {"User-Agent": engine.user_agent or self.options.user_agent, **headers}
        asked = url
        for hop in range(11):
            host = urllib.parse.urlsplit(url).hostname or ""
            if not (engine.allows(host) or host == route.host or host in extra_hosts):
                raise _Failure(f"refused redirect to {host} (not a {engine.name} host): {url}")
            if hop and route.prefix is not None and not self.options.use_original and host != route.host:
                raise _Failure(f"refused redirect from the mirror {route.host} to {host} under --no-original: {url}")
            netloc = urllib.parse.urlsplit(url).netloc
            if netloc in self._dead_hosts:
                raise _Failure(f"{self._dead_hosts[netloc]} ({url})")
            slot = self._enter_host(host)
            try:
                response = self.session.get(url, headers=headers, stream=True, allow_redirects=False,
                                            timeout=(self.options.timeout, self.options.timeout))
            except requests.RequestException as exc:
                slot.release()
                reason = _short_error(exc)
                if reason.startswith("cannot resolve host") or "Connection refused" in reason:
                    self._dead_hosts[netloc] = reason  # no point asking again in this run
                raise _Failure(f"{reason} ({url})") from exc
            if response.is_redirect and response.headers.get("Location"):
                response.close()
                slot.release()
                url = urllib.parse.urljoin(url, response.headers["Location"])
                continue  # Range/If-Range go along: the final server validates them
            with self._guard:
                self._served[asked] = url
            try:
                yield response
            finally:
                response.close()
                slot.release()
            return
        raise _Failure(f"too many redirects: {url}")

    # ---- fetching one URL

    def fetch_page(self, url: str, engine: SourceEngine, route: _Route) -> tuple[bytes, str]:
        with self._open(url, engine, route, {}) as response:
            if response.status_code != 200:
                raise _Failure(f"HTTP {response.status_code} for {url}")
            body = bytearray()
            try:
                for chunk in response.iter_content(_CHUNK):
                    body += chunk
                    if len(body) > _PAGE_CAP:
                        raise _Failure(f"page larger than {_PAGE_CAP} bytes: {url}")
            except requests.RequestException as exc:
                raise _Failure(f"{_short_error(exc)} ({url})") from exc
        return bytes(body), response.headers.get("Content-Type", "")

    def fetch_file(self, url: str, engine: SourceEngine, route: _Route, *, accept: Sequence[str],
                   extra_headers: dict[str, str] | None = None, extra_hosts: tuple[str, ...] = ()) -> Path:
        """Download ``url`` into its resumable ``.part`` file and return it (complete, sniffed as one of
        ``accept``). A transient failure mid-body keeps the ``.part`` and retries with Range."""
        key = hashlib.sha1(url.encode()).hexdigest()[:24]
        part = self.partial / f"{key}.part"
        meta_path = self.partial / f"{key}.part.json"
        attempts = self.options.retries + 1
        for attempt in range(attempts):
            try:
                return self._fetch_once(url, engine, route, part, meta_path, accept, extra_headers or {},
                                        extra_hosts)
            except _Interrupted as exc:
                if attempt + 1 >= attempts:
                    raise _Failure(f"interrupted after {part.stat().st_size if part.exists() else 0} bytes "
                                   f"({exc}); the partial file is kept and a rerun resumes: {url}") from exc
                time.sleep(self.options.backoff * 2**attempt)
        raise AssertionError("unreachable")

    def served(self, url: str) -> str:
        """The URL that answered the last request for ``url`` (itself unless a redirect was followed)."""
        with self._guard:
            return self._served.get(url, url)

    def _fetch_video(self, video, url: str, engine: SourceEngine, route: _Route,
                     extra_headers: dict[str, str] | None = None) -> Path:
        """Fetch, verify and move one clip; the URL's lock covers all three, since the ``.part`` is per URL and
        two videos may name one URL."""
        with self._key_lock("file:" + url):
            part = self.fetch_file(url, engine, route, accept=VIDEO_KINDS, extra_headers=extra_headers)
            return self._verify_into(video, part, url)

    def _fetch_once(self, url, engine, route, part: Path, meta_path: Path, accept, extra_headers,
                    extra_hosts) -> Path:
        meta = _read_json(meta_path) if part.exists() else {}
        if meta.get("url") != url:
            part.unlink(missing_ok=True)
            meta = {}
        offset = part.stat().st_size if part.exists() else 0
        # identity: byte ranges and the bytes we hash must be the file's own, not a compressed transfer form
        headers = {"Accept-Encoding": "identity", **extra_headers}
        if offset and (meta.get("etag") or meta.get("last_modified") or meta.get("total")):
            headers["Range"] = f"bytes={offset}-"
            if meta.get("etag") or meta.get("last_modified"):
                headers["If-Range"] = meta.get("etag") or meta["last_modified"]
        with self._open(url, engine, route, headers, extra_hosts) as response:
            status = response.status_code
            if status == 416 and offset:
                _drop(part, meta_path)
                raise _Interrupted("server refused the range; restarting")
            if status not in (200, 206):
                _drop(part, meta_path)
                raise _Failure(f"HTTP {status} for {url}")
            total = _int(response.headers.get("Content-Length"))
            if status == 206:
                content_range = response.headers.get("Content-Range", "")
                start, total = _parse_content_range(content_range)
                if start != offset or (meta.get("total") and total and meta["total"] != total):
                    _drop(part, meta_path)
                    raise _Interrupted(f"unexpected Content-Range {content_range!r}; restarting")
            else:
                offset = 0  # the server sent the whole body (it ignored or refused our range)
                part.unlink(missing_ok=True)
            full = total  # Content-Length of a 200, or the total of a 206's Content-Range
            if full is not None and full > self.options.max_bytes:
                _drop(part, meta_path)
                raise _Failure(f"file of {full} bytes is above the size cap of {self.options.max_bytes}: {url}")
            _write_json(meta_path, {"url": url, "etag": response.headers.get("ETag"),
                                    "last_modified": response.headers.get("Last-Modified"), "total": full})
            written = offset
            head = b""
            with open(part, "ab" if offset else "wb") as out:
                try:
                    for chunk in _raw_chunks(response):
                        if offset == 0 and len(head) < 16:
                            head += chunk[:16]
                            if len(head) >= 16:  # refuse an HTML error page before downloading all of it
                                self._check_kind(head, accept, url, part, meta_path)
                        written += len(chunk)
                        if written > self.options.max_bytes:
                            out.close()
                            _drop(part, meta_path)
                            raise _Failure(f"body exceeds the size cap of {self.options.max_bytes} bytes: {url}")
                        try:
                            out.write(chunk)
                        except OSError as exc:  # this machine's disk (full, read-only), not the network
                            raise _DiskError(exc) from exc
                except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
                    raise _Interrupted(_short_error(exc)) from exc
                except _DiskError as exc:
                    raise exc.error from None
        if full is not None and written != full:
            raise _Interrupted(f"got {written} of {full} bytes")
        with open(part, "rb") as handle:
            head = handle.read(64)
        self._check_kind(head, accept, url, part, meta_path)
        meta_path.unlink(missing_ok=True)
        return part

    @staticmethod
    def _check_kind(head: bytes, accept, url: str, part: Path, meta_path: Path) -> None:
        kind = sniff(head)
        if kind not in accept:
            _drop(part, meta_path)
            raise _Failure(f"server sent {kind} instead of {'/'.join(accept)}: {url}")

    # ---- one video

    def download(self, video: Video) -> DownloadResult:
        reused = self.manifest.lookup("files", video.id)
        if reused and (self.options.copies or reused[1].get("status") != "copy"):  # a copy only when asked for
            path, entry = reused
            return DownloadResult(video.id, entry.get("status", "ok"), path, entry["sha256"], entry["size"],
                                  entry.get("url"), entry.get("reason"), entry.get("copy"))
        engine = get_engine(video.source)
        reasons: list[str] = []
        expired = engine.unavailable(video, time.time())
        if expired:
            reasons.append(expired)
        else:
            routes = [_Route(None)] if self.options.use_original else []
            for route in [*routes, *(_Route(p) for p in self.options.mirrors)]:
                label = "original" if route.prefix is None else f"mirror {route.prefix}"
                attempt = _Attempt()
                for candidate in engine.candidates(video):
                    found = self._try(video, engine, candidate, route, attempt, depth=0)
                    if found:
                        path, url = found
                        status = "ok" if route.prefix is None else "mirror"
                        return self._finish(video, path, status, self.served(url), "; ".join(reasons) or None)
                reasons.append(f"{label}: " + " | ".join(attempt.reasons or ["no candidate"]))
        manual = self._manual(video, reasons)
        if manual:
            return manual
        if self.options.data_dir is None:
            reasons.append("no --data-dir given")
        else:
            reasons.append(f"not in {self.options.data_dir} (as {video.id}.<ext> or {video.filename!r})")
        if self.options.copies:
            found = self._from_copies(video, reasons)
            if found:
                return found
        return DownloadResult(video.id, "missing", None, None, None, None, "; ".join(reasons))

    def _from_copies(self, video, reasons: list[str]) -> DownloadResult | None:
        """The first registered copy that can be fetched and has the registry's sha256 and size."""
        copies = self.copies.get(video.id, ())
        if not copies:
            reasons.append("no registered public copy")
            return None
        routes = ([_Route(None)] if self.options.use_original else []) + [_Route(p) for p in self.options.mirrors]
        if not routes:
            reasons.append("copies: no route (--no-original and no --mirror)")
            return None
        for copy in copies:
            engine = _CopyHost(urllib.parse.urlsplit(copy.url).hostname or "")
            for route in routes:
                url = route.url(copy.url)
                try:
                    with self._key_lock("file:" + url):
                        part = self.fetch_file(url, engine, route, accept=VIDEO_KINDS)
                        self._check_copy(part, copy, url)
                        path = self._verify_into(video, part, url, expect=copy)
                except (_Failure, DownloadError) as exc:
                    reasons.append(f"copy {copy.repository}@{copy.commit[:12]}: {exc}")
                    continue
                return self._finish(video, path, "copy", self.served(url), "; ".join(reasons) or None,
                                    copy=copy.describe())
        return None

    @staticmethod
    def _check_copy(part: Path, copy: Copy, url: str) -> None:
        """Refuse (and delete) a copy whose bytes are not the registry's: copies, unlike originals, have digests."""
        size, digest = part.stat().st_size, sha256_file(part)
        if (size, digest) != (copy.size, copy.sha256):
            part.unlink(missing_ok=True)
            log.warning("%s: refused the copy %s: %d bytes with sha256 %s, the registry says %d bytes with sha256 %s",
                        copy.video_id, url, size, digest, copy.size, copy.sha256)
            raise _Failure(f"refused {url}: sha256 {digest} ({size} bytes) differs from the registry's "
                           f"{copy.sha256} ({copy.size} bytes)")

    def _try(self, video, engine, candidate: Candidate, route: _Route, attempt: _Attempt,
             depth: int) -> tuple[Path, str] | None:
        url = route.url(candidate.url)
        try:
            if candidate.kind == "media":
                return self._fetch_video(video, url, engine, route), url
            if candidate.kind == "archive":
                return self._from_archive(video, engine, candidate, route, url), url
            if candidate.kind == "ytdlp":
                return self._via_ytdlp(video, engine, route, url)
            # a page: parse it, then try what it links to (on the same route)
            if depth >= 3:
                raise _Failure(f"pages nested too deep at {url}")
            body, content_type = self._page(url, engine, route)
            found = engine.parse_page(video, candidate, body, content_type)
            if not found and engine.js_pages and sniff(body[:64]) == "html":
                with self._key_lock("render:" + url):
                    if url not in self._rendered:
                        self._rendered[url] = self._render(url, engine)
                found = engine.parse_page(video, candidate, self._rendered[url].encode(), "text/html")
            if not found:
                raise _Failure(f"no media link on the {candidate.note} {url}")
            for inner in found:
                result = self._try(video, engine, inner, route, attempt, depth + 1)
                if result:
                    return result
            return None
        except (_Failure, DownloadError) as exc:
            attempt.reasons.append(f"{candidate.note}: {exc}")
            log.debug("%s: %s: %s", video.id, candidate.note, exc)
            return None

    def _page(self, url: str, engine: SourceEngine, route: _Route) -> tuple[bytes, str]:
        """A page fetched once per run (several videos share a transfer or case page); failures are remembered."""
        with self._key_lock("page:" + url):
            if url not in self._pages:
                try:
                    self._pages[url] = self.fetch_page(url, engine, route)
                except _Failure as exc:
                    self._pages[url] = str(exc)
        cached = self._pages[url]
        if isinstance(cached, str):
            raise _Failure(cached)
        return cached

    def _render(self, url: str, engine: SourceEngine) -> str:
        if not self.options.browser:
            raise _Failure(f"page needs JavaScript and the browser is disabled: {url}")
        with self._guard:
            if self._browser is None and self._browser_error is None:
                from processing.sources.browser import HeadlessBrowser

                try:
                    self._browser = HeadlessBrowser(user_agent=engine.user_agent,
                                                    page_timeout=self.options.timeout)
                except CovidxError as exc:
                    self._browser_error = str(exc)
        if self._browser is None:
            raise _Failure(f"page needs JavaScript: {self._browser_error}")
        try:
            return self._browser.render(url, wait_css="a.btn.btn-primary[href], video[src], source[src]",
                                        timeout=self.options.timeout)
        except CovidxError as exc:
            raise _Failure(str(exc)) from exc

    def _verify_into(self, video, part: Path, url: str, expect: Copy | None = None) -> Path:
        """Decode-check ``part`` (against the catalogue, or the copy's registered geometry) and move it to
        ``downloads/<video id>.<ext>``; on failure delete it."""
        target = video if expect is None else _Geometry(expect.width, expect.height)
        try:
            check = verify_clip(part, target) if self.options.decode_check else None
        except DownloadError:
            part.unlink(missing_ok=True)
            raise
        with open(part, "rb") as handle:
            kind = check.kind if check else sniff(handle.read(64))
        final = self.root / f"{video.id}{EXTENSIONS[kind]}"
        for stale in self.root.glob(f"{video.id}.*"):
            if stale != final and stale.suffix in EXTENSIONS.values():
                stale.unlink()
        os.replace(part, final)
        return final

    def _finish(self, video, path: Path, status: str, url: str, reason: str | None,
                copy: Mapping[str, Any] | None = None) -> DownloadResult:
        extra = {"copy": dict(copy)} if copy else {}
        entry = self.manifest.record("files", video.id, path, status=status, url=url, reason=reason,
                                     source=video.source, **extra)
        return DownloadResult(video.id, status, path, entry["sha256"], entry["size"], url, reason, copy)

    # ---- archives (Butterfly) and yt-dlp (Vimeo)

    def _from_archive(self, video, engine, candidate: Candidate, route: _Route, url: str) -> Path:
        with self._key_lock("archive:" + url):
            if url in self._archive_failures:  # one failed fetch per run, not one per video of the transfer
                raise _Failure(self._archive_failures[url])
            reused = self.manifest.lookup("archives", url)
            if reused:
                archive = reused[0]
            else:
                try:
                    part = self.fetch_file(url, engine, route, accept=("zip",))
                    archive = self.archives / f"{hashlib.sha1(url.encode()).hexdigest()[:24]}.zip"
                    try:
                        check_archive(part, max_total=self.options.max_archive_bytes,
                                      max_ratio=self.options.max_ratio)
                    except DownloadError:
                        part.unlink(missing_ok=True)
                        raise
                except (_Failure, DownloadError) as exc:
                    self._archive_failures[url] = str(exc)
                    raise
                os.replace(part, archive)
                self.manifest.record("archives", url, archive, source=engine.name)
        return self._extract_member(video, archive, candidate.member or video.filename)

    def _extract_member(self, video, archive: Path, member: str) -> Path:
        infos = check_archive(archive, max_total=self.options.max_archive_bytes, max_ratio=self.options.max_ratio)
        wanted = member.replace("\\", "/").rsplit("/", 1)[-1]
        matches = [i for i in infos if not i.is_dir() and PurePosixPath(i.filename).name == wanted]
        if not matches:
            matches = [i for i in infos if not i.is_dir()
                       and PurePosixPath(i.filename).name.casefold() == wanted.casefold()]
        if not matches:
            raise _Failure(f"{wanted!r} is not in the archive {archive.name}")
        part = self.partial / f"{video.id}.member.part"
        try:
            with zipfile.ZipFile(archive) as zf, zf.open(matches[0]) as src, open(part, "wb") as out:
                _copy_capped(src, out, self.options.max_bytes, f"member {wanted!r}")
        except BaseException:
            part.unlink(missing_ok=True)
            raise
        return self._verify_into(video, part, archive.absolute().as_uri())

    def _via_ytdlp(self, video, engine, route: _Route, url: str) -> tuple[Path, str]:
        import yt_dlp

        params = {"quiet": True, "no_warnings": True, "noplaylist": True, "socket_timeout": self.options.timeout,
                  "format": "best[protocol^=http][ext=mp4]/best[protocol^=http]",  # one progressive file
                  "logger": _QuietLogger(), "cachedir": False}
        try:
            with yt_dlp.YoutubeDL(params) as ydl:
                info = ydl.extract_info(url, download=False)
        except Exception as exc:  # yt-dlp raises many types; its message is the reason
            raise _Failure(f"yt-dlp could not resolve {url}: {_ytdlp_message(exc)}") from exc
        if info.get("entries"):
            info = next(iter(info["entries"]))
        chosen = info.get("requested_formats") or [info]
        media = chosen[-1].get("url") or info.get("url")
        if not media:
            raise _Failure(f"yt-dlp found no downloadable format at {url}")
        headers = {k: v for k, v in (chosen[-1].get("http_headers") or {}).items() if k.lower() != "user-agent"}
        media = route.url(media)
        return self._fetch_video(video, media, engine, route, headers), media

    # ---- manual folder

    def _manual(self, video, reasons: list[str]) -> DownloadResult | None:
        folder = self.options.data_dir
        if folder is None or not folder.is_dir():
            return None
        names = {video.filename, basename(video.url)} - {""}
        with self._guard:
            if self._manual_files is None:
                self._manual_files = sorted(p for p in folder.rglob("*") if p.is_file())
            files = self._manual_files
        picks = [p for p in files if p.stem == video.id or p.name == video.id] + \
                [p for p in files if p.name in names]
        for pick in picks:
            part = self.partial / f"{video.id}.manual.part"
            shutil.copyfile(pick, part)
            try:
                path = self._verify_into(video, part, pick.absolute().as_uri())
            except DownloadError as exc:
                reasons.append(f"manual file {pick}: {exc}")
                continue
            return self._finish(video, path, "manual", pick.absolute().as_uri(), "; ".join(reasons) or None)
        for archive in (p for p in files if p.suffix.lower() == ".zip"):
            try:
                path = self._extract_member(video, archive, video.filename)
            except _Failure:
                continue
            except DownloadError as exc:
                reasons.append(f"manual archive {archive}: {exc}")
                continue
            return self._finish(video, path, "manual", archive.absolute().as_uri(), "; ".join(reasons) or None)
        return None


@dataclass(frozen=True)
class _Expected:
    width: int
    height: int
    frame_count: int | None = None
    trusted: bool = True


class _Geometry:
    """What :func:`verify_clip` compares a copy with: its registered width and height."""

    def __init__(self, width: int, height: int) -> None:
        self.expected = _Expected(width, height)


class _DiskError(Exception):
    """An OSError writing a download to disk: carried past the handler of network errors, then raised as is."""

    def __init__(self, error: OSError) -> None:
        super().__init__(str(error))
        self.error = error


class _Interrupted(Exception):
    """A transient failure mid-transfer: the ``.part`` is kept and the next attempt resumes."""


class _QuietLogger:
    def debug(self, msg: str) -> None:
        log.debug("yt-dlp: %s", msg)

    info = warning = debug

    def error(self, msg: str) -> None:
        log.debug("yt-dlp error: %s", msg)


def _ytdlp_message(exc: Exception) -> str:
    text = str(getattr(exc, "msg", None) or exc).replace("ERROR: ", "").strip()
    match = _RESOLVE.search(text)
    return f"cannot resolve host {match.group(1)}" if match else text[:300]


_RESOLVE = re.compile(r"Failed to resolve '([^']+)'")


def _short_error(exc: BaseException | str) -> str:
    """A one-line reason for a transport error (urllib3's messages nest the cause several times)."""
    text = str(exc)
    name = type(exc).__name__ if isinstance(exc, BaseException) else "error"
    match = _RESOLVE.search(text)
    if match:
        return f"cannot resolve host {match.group(1)}"
    retried = " after retries" if "Max retries exceeded" in text else ""
    for marker in ("Read timed out", "Connection reset", "Connection refused", "Connection aborted",
                   "RemoteDisconnected", "IncompleteRead", "timed out"):
        if marker in text:
            return f"{name}{retried}: {marker}"
    return f"{name}: {text[:200]}"


def _raw_chunks(response: requests.Response) -> Iterator[bytes]:
    """The body as it arrives (``read1``), so bytes received before a dropped connection reach the ``.part``."""
    while chunk := response.raw.read1(_CHUNK):
        yield chunk


def _drop(part: Path, meta: Path) -> None:
    part.unlink(missing_ok=True)
    meta.unlink(missing_ok=True)


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _parse_content_range(value: str) -> tuple[int | None, int | None]:
    """``bytes 100-199/200`` -> (100, 200); unknown parts are None."""
    try:
        unit, rest = value.split(" ", 1)
        span, total = rest.split("/", 1)
        return int(span.split("-", 1)[0]), (None if total == "*" else int(total))
    except ValueError:
        return None, None


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _write_json(path: Path, data: dict[str, Any]) -> None:
    with atomic_write(path) as tmp:
        tmp.write_text(json.dumps(data))


def copies_would_recover(results: Sequence[DownloadResult], registry: Path | None = None) -> list[str]:
    """The missing videos of ``results`` that the registry of copies covers: what a rerun with ``--copies`` would
    try to recover."""
    copies = load_copies(registry) if registry else load_copies()
    return [r.video_id for r in results if r.status == "missing" and r.video_id in copies]


def would_recover_text(ids: Sequence[str]) -> str:
    """One line saying what ``--copies`` would bring, or "" when nothing."""
    if not ids:
        return ""
    return (f"{len(ids)} of the missing videos have a registered public copy; a rerun with --copies would "
            f"recover them from it (sha256-verified, not the original files): {', '.join(ids)}")


def download_videos(videos: Sequence[Video], options: DownloadOptions) -> list[DownloadResult]:
    """Download, verify and cache every video; one :class:`DownloadResult` per video, in input order.

    Never raises for a video that cannot be fetched (it is ``missing`` with a reason); raises
    :class:`~processing.errors.InvalidChoiceError` for a video whose source has no engine, and the ``OSError`` of
    this machine's disk (full, read-only) once the downloads under way have ended (what finished is kept).
    """
    for video in videos:
        get_engine(video.source)
    downloader = Downloader(options)
    results: dict[str, DownloadResult] = {}
    disk_error: OSError | None = None
    try:
        with ThreadPoolExecutor(max_workers=options.workers) as pool:
            futures = {pool.submit(downloader.download, video): video for video in videos}
            for future in progress(as_completed(futures), desc="download", total=len(futures), unit="clip"):
                video = futures[future]
                if future.cancelled():
                    continue
                try:
                    results[video.id] = future.result()
                except OSError as exc:
                    if isinstance(exc, requests.RequestException):  # requests' errors are OSErrors too
                        results[video.id] = DownloadResult(video.id, "missing", None, None, None, None,
                                                           _short_error(exc))
                        continue
                    # This machine's disk failed (full, read-only): no video is missing, the run cannot go on.
                    # What finished stays in the cache; the others are not started.
                    disk_error = disk_error or exc
                    for other in futures:
                        other.cancel()
                except Exception as exc:  # a bug must not lose the other videos' work
                    log.exception("%s: unexpected error", video.id)
                    results[video.id] = DownloadResult(video.id, "missing", None, None, None, None,
                                                       f"internal error: {type(exc).__name__}: {exc}")
    finally:
        downloader.close()
    if disk_error is not None:
        raise disk_error
    return [results[video.id] for video in videos]


__all__ = ["DownloadOptions", "DownloadResult", "download_videos", "copies_would_recover", "would_recover_text",
           "ORIGINS", "sniff", "mirror_url", "verify_clip",
           "safe_extract", "check_archive", "check_member_name", "Manifest", "Downloader", "DOWNLOAD_STATUSES"]
