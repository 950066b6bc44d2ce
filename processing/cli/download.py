"""``covidx-us download``: fetch, verify and cache the clips of a release view; print one line per video.

Only calls :func:`processing.release.catalogue.load_catalogue` and :func:`processing.sources.download.download_videos`; exits 1 when
a video is missing (unless ``--allow-missing``), 2 on a usage or release error (via the CLI dispatcher).
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from processing.errors import CovidxError, finite_float
from processing.vocabulary import SOURCES, VERSIONS

if TYPE_CHECKING:
    from processing.sources.download import DownloadResult


def add_locator_arguments(parser: argparse.ArgumentParser) -> None:
    """Which release, which of its sources, and where its clips may be found: the arguments ``download`` and
    ``sources`` share."""
    parser.add_argument("--release", default=VERSIONS[-1], choices=VERSIONS, help="release version (default %(default)s)")
    parser.add_argument("--release-dir", type=Path, help="local folder laid out like the upstream repository "
                        "(default: fetch the pinned upstream files into the cache)")
    parser.add_argument("--custom-release", action="store_true",
                        help="accept a release folder that is not the pinned upstream (recorded as unofficial)")
    parser.add_argument("--sources", "--source", nargs="+", action="extend", choices=SOURCES, metavar="SOURCE",
                        dest="sources", help=f"only these sources ({', '.join(SOURCES)}); repeatable, as in build")
    parser.add_argument("--mirror", action="append", default=[], metavar="PREFIX",
                        help="URL prefix to which the original host and path are appended, tried after the "
                             "original (repeatable), e.g. https://web.archive.org/web/2021id_/")
    parser.add_argument("--data-dir", type=Path, help="folder of files you fetched yourself, named by video id "
                        "(23_grepmed_pneumonia.mp4) or by original file name; zips are searched too")
    parser.add_argument("--cache-dir", type=Path, help="cache folder (default $COVIDX_US_CACHE or ~/.cache/covidx-us)")
    parser.add_argument("--no-original", action="store_true",
                        help="skip the original hosts: use only the mirrors and --data-dir (a mirror's redirect "
                             "to another host is refused)")


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "download",
        help="download and verify the clips of a release",
        description="Download every clip of a release view from its source (then the mirrors, then --data-dir), "
                    "verify it, and cache it with its sha256 in <cache-dir>/downloads/manifest.json.",
    )
    add_locator_arguments(parser)
    parser.add_argument("--copies", action="store_true",
                        help="last, try the registered public copies (metadata/copies.csv; sha256-verified; not "
                             "the original files, and recorded as such)")
    parser.add_argument("--timeout", type=finite_float, default=30.0, help="seconds per connect/read (default %(default)s)")
    parser.add_argument("--retries", type=int, default=4, help="retries of transient failures (default %(default)s)")
    parser.add_argument("--delay", type=finite_float, default=1.0,
                        help="seconds between two requests to one host (default %(default)s)")
    parser.add_argument("--workers", type=int, default=4, help="videos fetched in parallel (default %(default)s)")
    parser.add_argument("--no-browser", action="store_true", help="never start headless Chromium")
    parser.add_argument("--allow-missing", action="store_true", help="exit 0 even when some videos are missing")
    parser.set_defaults(func=run)
    return parser


def table(results: Sequence[DownloadResult]) -> str:
    """One line per video (id, status, size, reason or file), then counts by status."""
    from processing.vocabulary import DOWNLOAD_STATUSES

    width = max([len("video"), *(len(r.video_id) for r in results)])
    lines = [f"{'video'.ljust(width)}  {'status':7}  {'bytes':>10}  detail"]
    for r in results:
        detail = r.reason if r.status == "missing" else str(r.path)
        if r.copy:
            detail += f" (copy: {r.copy['repository']}@{str(r.copy['commit'])[:12]} {r.copy['path']})"
        size = "" if r.size is None else str(r.size)
        lines.append(f"{r.video_id.ljust(width)}  {r.status:7}  {size:>10}  {detail}")
    counts = Counter(r.status for r in results)
    lines.append(", ".join(f"{counts[s]} {s}" for s in DOWNLOAD_STATUSES) + f" of {len(results)} videos")
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> int:
    from processing.release.catalogue import load_catalogue
    from processing.release.files import default_cache_dir
    from processing.sources.download import (
        DownloadOptions,
        copies_would_recover,
        download_videos,
        would_recover_text,
    )

    cache_dir = args.cache_dir or default_cache_dir()
    catalogue = load_catalogue(args.release, args.release_dir, custom=args.custom_release, cache_dir=cache_dir)
    if args.sources:
        catalogue = catalogue.filter(sources=args.sources)
    if args.copies and not catalogue.official:
        raise CovidxError("--copies works with the official release only: the registry of copies "
                          "(metadata/copies.csv) names the official catalogue's videos")
    options = DownloadOptions(cache_dir=cache_dir, mirrors=tuple(args.mirror), data_dir=args.data_dir,
                              timeout=args.timeout, retries=args.retries, delay=args.delay, workers=args.workers,
                              browser=not args.no_browser, use_original=not args.no_original,
                              copies=args.copies)
    results = download_videos(catalogue.videos, options)
    sys.stdout.write(table(results))
    if not args.copies and catalogue.official:  # the registry names the official catalogue's videos
        hint = would_recover_text(copies_would_recover(results))
        if hint:
            print(hint)
    missing = sum(r.status == "missing" for r in results)
    if missing and not args.allow_missing:
        print(f"covidx-us download: {missing} video(s) missing; see the reasons above, drop files into --data-dir, "
              "or pass --allow-missing", file=sys.stderr)
        return 1
    return 0
