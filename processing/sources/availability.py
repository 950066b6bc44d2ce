"""What a user can get today, per video: is the catalogue URL alive, is a mirror or a manual file there, is a copy
known, what is in the cache, and so what a build would use (``covidx-us sources``).

Online, each catalogue URL (and each mirror's version of it) is asked for one byte (``Range: bytes=0-0``) through
the downloader's own connection machinery: the same per-host politeness (bounded concurrency, a delay between two
requests to a host), the same redirect rules, a short timeout and no retries. An engine that knows a row is dead
(an expired presigned link) answers without a request. Offline (``offline=True``), no request is made at all: the
answer comes from the cache manifest, the manual folder and the registry of copies alone.

No pixels; nothing is downloaded or written.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from processing.release.copies import Copy, load_copies
from processing.sources import get_engine
from processing.sources.download import Downloader, DownloadOptions, _Failure, _Route

if TYPE_CHECKING:
    from processing.release.catalogue import Video

USES = ("cache", "original", "mirror", "manual", "copy", "missing", "unknown")


@dataclass(frozen=True)
class Availability:
    """One video's answer. ``alive``: True/False for the catalogue URL, None when not asked (offline,
    --no-original). ``use``/``use_with_copies``: what a build would use, one of :data:`USES`."""

    video_id: str
    source: str
    label: str
    url: str
    alive: bool | None
    detail: str
    mirror: str | None  # the first mirror prefix that answers for it
    manual: str | None  # the manual file that would be used
    cached: str | None  # the cache manifest's status for it (ok, mirror, manual, copy)
    copy: str | None  # confidence of the best registered copy, or None
    copy_repository: str | None
    use: str
    use_with_copies: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _manual_file(downloader: Downloader, video: Video) -> str | None:
    folder = downloader.options.data_dir
    if folder is None or not folder.is_dir():
        return None
    names = {video.filename} - {""}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        if path.stem == video.id or path.name in names:
            return str(path)
    return None


def _probe(downloader: Downloader, url: str, video: Video, route: _Route) -> tuple[bool, str]:
    engine = get_engine(video.source)
    target = route.url(url)
    try:
        with downloader._open(target, engine, route, {"Range": "bytes=0-0", "Accept-Encoding": "identity"}) as resp:
            return resp.status_code in (200, 206), f"HTTP {resp.status_code}"
    except _Failure as exc:
        return False, str(exc)


def check_availability(videos: Sequence[Video], options: DownloadOptions, *, offline: bool = False,
                       registry: dict[str, tuple[Copy, ...]] | None = None) -> list[Availability]:
    """One :class:`Availability` per video, in input order. ``registry`` defaults to the project's copies."""
    copies = load_copies() if registry is None else registry
    downloader = Downloader(options)
    try:
        def one(video: Video) -> Availability:
            entry = downloader.manifest.data["files"].get(video.id)
            cached = None
            if entry and (downloader.root / entry["path"]).is_file() \
                    and (downloader.root / entry["path"]).stat().st_size == entry["size"]:
                cached = entry.get("status", "ok")
            manual = _manual_file(downloader, video)
            best = copies.get(video.id, ())
            alive, detail, mirror = None, "not checked (offline)" if offline else "not checked (--no-original)", None
            if not offline:
                expired = get_engine(video.source).unavailable(video, time.time())
                if expired:
                    alive, detail = False, expired
                elif options.use_original:
                    alive, detail = _probe(downloader, video.url, video, _Route(None))
                if not alive and not expired:
                    for prefix in options.mirrors:
                        ok, why = _probe(downloader, video.url, video, _Route(prefix))
                        if ok:
                            mirror = prefix
                            break
            if cached and cached != "copy":
                use = "cache"
            elif alive:
                use = "original"
            elif mirror:
                use = "mirror"
            elif manual:
                use = "manual"
            else:
                use = "unknown" if offline else "missing"
            with_copies = use
            if use in ("missing", "unknown") and (best or cached == "copy"):
                with_copies = "cache" if cached == "copy" else "copy"
            return Availability(video.id, video.source, video.label, video.url, alive, detail, mirror, manual,
                                cached, best[0].confidence if best else None,
                                best[0].repository if best else None, use, with_copies)

        with ThreadPoolExecutor(max_workers=options.workers) as pool:
            return list(pool.map(one, videos))
    finally:
        downloader.close()


def totals(rows: Sequence[Availability]) -> dict[str, dict[str, dict[str, int]]]:
    """Per source and per class: videos, and how many a build could have without and with copies."""
    out: dict[str, dict[str, dict[str, int]]] = {"source": {}, "class": {}}
    for row in rows:
        for kind, key in (("source", row.source), ("class", row.label)):
            counts = out[kind].setdefault(key, {"videos": 0, "available": 0, "with_copies": 0})
            counts["videos"] += 1
            counts["available"] += row.use not in ("missing", "unknown")
            counts["with_copies"] += row.use_with_copies not in ("missing", "unknown")
    return out


__all__ = ["Availability", "check_availability", "totals", "USES"]
